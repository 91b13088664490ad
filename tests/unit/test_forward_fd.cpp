// AddForwardsFromFd's descriptor (api/forward_fd): the sealed memfd the
// client makes (client/forward_call's sealed_memfd) is read back, and a
// descriptor that is unsealed, partly sealed, not a file, or too large is
// refused naming "fd" before its bytes are used.
#include "api/forward_fd.hpp"
#include "forward_call.hpp"
#include "model/error.hpp"
#include "model/forward_records.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace unit_test_forward_fd {

using kvmnet::ErrorKind;
using kvmnet::model::ForwardFields;

namespace {

struct Fd {
    int fd;
    ~Fd() { close(fd); }
};

std::vector<ForwardFields> sample()
{
    return {{"tcp", "", 8080, 0, "192.168.122.10", 80, "web", 0}, {"udp", "", 53, 0, "192.168.122.11", 53, "", 5}};
}

// A memfd with `bytes` and these seals.
int memfd_with(const std::string& bytes, int seals)
{
    const int fd = memfd_create("test-forwards", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    if (seals) REQUIRE(fcntl(fd, F_ADD_SEALS, seals) == 0);
    return fd;
}

std::string refusal(int fd, ErrorKind kind)
{
    try {
        kvmnet::api::read_forward_records_fd(fd);
    } catch (const kvmnet::Error& e) {
        CHECK(e.kind() == kind);
        return e.what();
    }
    FAIL("read without an error");
    return {};
}

}  // namespace

TEST_CASE("forward fd: the client's sealed memfd reads back", "[forward_fd]")
{
    Fd fd{kvmnet::client::sealed_memfd(kvmnet::model::encode_forward_records(sample()))};
    CHECK(kvmnet::api::read_forward_records_fd(fd.fd) == sample());
    // The client sealed it for good: no write, no further seals.
    CHECK(write(fd.fd, "x", 1) < 0);
    CHECK((fcntl(fd.fd, F_GET_SEALS) & F_SEAL_SEAL) != 0);
}

TEST_CASE("forward fd: descriptors that are not sealed files are refused", "[forward_fd]")
{
    const std::string bytes = kvmnet::model::encode_forward_records(sample());
    {
        Fd fd{memfd_with(bytes, 0)};
        CHECK_THAT(refusal(fd.fd, ErrorKind::InvalidArgument), Catch::Contains("fd: not sealed"));
    }
    {
        // Writes sealed, but it could still shrink (SIGBUS in the mapping).
        Fd fd{memfd_with(bytes, F_SEAL_WRITE | F_SEAL_GROW)};
        CHECK_THAT(refusal(fd.fd, ErrorKind::InvalidArgument), Catch::Contains("fd: not sealed"));
    }
    {
        int pipe_fds[2];
        REQUIRE(pipe2(pipe_fds, O_CLOEXEC) == 0);
        Fd read_end{pipe_fds[0]}, write_end{pipe_fds[1]};
        CHECK_THAT(refusal(read_end.fd, ErrorKind::InvalidArgument), Catch::Contains("fd: not a memfd"));
    }
}

TEST_CASE("forward fd: a file over the limit is TooLarge, its bytes unread", "[forward_fd]")
{
    const int raw = memfd_create("test-forwards", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    REQUIRE(raw >= 0);
    Fd fd{raw};
    // Sparse: no memory is used for the size.
    REQUIRE(ftruncate(fd.fd, static_cast<off_t>(kvmnet::model::max_forward_records_bytes + 1)) == 0);
    REQUIRE(fcntl(fd.fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW) == 0);
    CHECK_THAT(refusal(fd.fd, ErrorKind::TooLarge), Catch::Contains("fd: 67108865 bytes, more than 67108864"));
}

TEST_CASE("forward fd: malformed records in a sealed memfd are the codec's errors", "[forward_fd]")
{
    std::string bytes = kvmnet::model::encode_forward_records(sample());
    bytes.resize(bytes.size() - 2);
    Fd fd{memfd_with(bytes, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)};
    CHECK_THAT(refusal(fd.fd, ErrorKind::InvalidArgument), Catch::Contains("forwards[1].guest: truncated"));
    Fd empty{memfd_with("", F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)};
    CHECK_THAT(refusal(empty.fd, ErrorKind::InvalidArgument), Catch::Contains("records: truncated header"));
}

}  // namespace unit_test_forward_fd
