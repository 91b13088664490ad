#include "api/forward_fd.hpp"

#include "model/error.hpp"
#include "model/forward_records.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

namespace kvmnet::api {

namespace {

constexpr int required_seals = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW;

struct Mapping {
    void* data = MAP_FAILED;
    std::size_t size = 0;
    ~Mapping()
    {
        if (data != MAP_FAILED) munmap(data, size);
    }
};

}  // namespace

std::vector<model::ForwardFields> read_forward_records_fd(int fd)
{
    struct stat st {};
    if (fstat(fd, &st) != 0) throw invalid_field("fd", std::string("cannot be read: ").append(std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) throw invalid_field("fd", "not a memfd or regular file");
    const int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & required_seals) != required_seals)
        throw invalid_field("fd", "not sealed (a memfd with F_SEAL_WRITE, F_SEAL_SHRINK and F_SEAL_GROW is needed)");
    const auto size = static_cast<std::size_t>(st.st_size);
    if (size > model::max_forward_records_bytes)
        throw Error(ErrorKind::TooLarge, std::string("fd: ")
                                             .append(std::to_string(size))
                                             .append(" bytes, more than ")
                                             .append(std::to_string(model::max_forward_records_bytes)));
    if (size == 0) return model::decode_forward_records({});
    // Sealed against shrinking: the mapping cannot lose pages under us
    // (no SIGBUS), and against writing: the bytes checked are the bytes used.
    Mapping map;
    map.size = size;
    map.data = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map.data == MAP_FAILED)
        throw invalid_field("fd", std::string("cannot be mapped: ").append(std::strerror(errno)));
    return model::decode_forward_records(std::string_view(static_cast<const char*>(map.data), size));
}

}  // namespace kvmnet::api
