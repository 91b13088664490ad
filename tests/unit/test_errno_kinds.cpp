// The kernel layer's one errno-to-kind mapping (kernel::kind_for_errno), for
// requests that create and changes of existing links alike, and libnl's
// codes through it (kernel::kind_for). Creating requests used to map EBUSY
// to Kernel while link changes mapped it to Busy, and link changes mapped
// EEXIST to Kernel while creating requests mapped it to AlreadyExists.
#include "kernel/netlink_util.hpp"
#include "model/error.hpp"

#include <catch2/catch.hpp>
#include <netlink/errno.h>

#include <cerrno>

namespace unit_test_errno_kinds {

using kvmnet::ErrorKind;

TEST_CASE("Every kernel errno maps to one kind, whichever verb got it", "[kernel][errno]")
{
    struct Row {
        int error;
        ErrorKind kind;
    };
    const Row rows[] = {
        {ENODEV, ErrorKind::NotFound},    {EEXIST, ErrorKind::AlreadyExists},
        {EBUSY, ErrorKind::Busy},         {EOPNOTSUPP, ErrorKind::Unsupported},
        {EPERM, ErrorKind::Kernel},       {EINVAL, ErrorKind::Kernel},
        {ENOBUFS, ErrorKind::Kernel},     {ENOENT, ErrorKind::Kernel},
        {ENETUNREACH, ErrorKind::Kernel}, {0, ErrorKind::Kernel},
    };
    for (const Row& row : rows) {
        INFO("errno " << row.error);
        // Netlink answers carry the errno negated; both signs mean the same.
        CHECK(kvmnet::kernel::kind_for_errno(-row.error) == row.kind);
        CHECK(kvmnet::kernel::kind_for_errno(row.error) == row.kind);
    }
}

TEST_CASE("libnl's error codes map to the kinds of the errnos they stand for", "[kernel][errno]")
{
    struct Row {
        int nl_error;
        ErrorKind kind;
    };
    const Row rows[] = {
        {NLE_NODEV, ErrorKind::NotFound},        {NLE_OBJ_NOTFOUND, ErrorKind::NotFound},
        {NLE_EXIST, ErrorKind::AlreadyExists},   {NLE_BUSY, ErrorKind::Busy},
        {NLE_OPNOTSUPP, ErrorKind::Unsupported}, {NLE_PERM, ErrorKind::Kernel},
        {NLE_INVAL, ErrorKind::Kernel},          {NLE_FAILURE, ErrorKind::Kernel},
    };
    for (const Row& row : rows) {
        INFO("libnl error " << row.nl_error);
        CHECK(kvmnet::kernel::kind_for(-row.nl_error) == row.kind);
        CHECK(kvmnet::kernel::kind_for(row.nl_error) == row.kind);
    }
}

}  // namespace unit_test_errno_kinds
