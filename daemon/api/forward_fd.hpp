// AddForwardsFromFd's argument: a sealed memfd holding forward records
// (model/forward_records.hpp, docs/dbus-api.md "Forward records"). The
// bus carries the descriptor; kvmnetd maps the file and decodes it.
#pragma once

#include "model/forward.hpp"

#include <vector>

namespace kvmnet::api {

// The forwards in the file behind `fd` (not closed here). Refused before
// anything is read, as InvalidArgument naming "fd": not a regular file, or
// not sealed against writing, shrinking and growing (F_SEAL_WRITE,
// F_SEAL_SHRINK, F_SEAL_GROW: then its size and bytes cannot change while
// kvmnetd reads them); TooLarge naming "fd" over
// model::max_forward_records_bytes. The records' own errors are
// model::decode_forward_records'.
std::vector<model::ForwardFields> read_forward_records_fd(int fd);

}  // namespace kvmnet::api
