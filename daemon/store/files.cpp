// Atomic writes: a crash leaves either the old file or the new one, never a
// truncated mix, because rename(2) within one directory is atomic and both
// the data and the directory entry are fsynced before we report success.
#include "store/files.hpp"

#include "model/error.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace kvmnet::store {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path)
{
    throw Error(ErrorKind::Kernel, what + " " + path + ": " + std::strerror(errno));
}

[[noreturn]] void abandon(int fd, const std::string& tmp, const char* what)
{
    const int saved = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    errno = saved;
    fail(what, tmp);
}

// Writes `contents` to PATH.tmp and renames it over `path`; with `sync` the
// data and then the directory entry are fsynced too.
void write_via_temp(const std::string& path, const std::string& contents, unsigned mode, bool sync)
{
    const std::string tmp = path + ".tmp";
    const int fd = write_temp(tmp, contents, mode, sync);
    if (sync && ::fsync(fd) != 0) abandon(fd, tmp, "cannot sync");
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int saved = errno;
        ::unlink(tmp.c_str());
        errno = saved;
        fail("cannot rename into place", path);
    }
    if (!sync) return;
    const std::string dir = std::filesystem::path(path).parent_path().string();
    const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

}  // namespace

int write_temp(const std::string& tmp, const std::string& contents, unsigned mode, bool exact_mode)
{
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) fail("cannot create", tmp);
    std::size_t done = 0;
    while (done < contents.size()) {
        const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            abandon(fd, tmp, "cannot write");
        }
        done += static_cast<std::size_t>(n);
    }
    if (exact_mode && ::fchmod(fd, mode) != 0) abandon(fd, tmp, "cannot set the mode of");
    return fd;
}

void write_atomic(const std::string& path, const std::string& contents, unsigned mode)
{
    write_via_temp(path, contents, mode, true);
}

void write_replace(const std::string& path, const std::string& contents, unsigned mode)
{
    write_via_temp(path, contents, mode, false);
}

void overwrite(const std::string& path, const std::string& contents, unsigned mode)
{
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, mode);
    if (fd < 0) fail("cannot open", path);
    std::size_t done = 0;
    while (done < contents.size()) {
        const ssize_t n = ::pwrite(fd, contents.data() + done, contents.size() - done, static_cast<off_t>(done));
        if (n < 0) {
            if (errno == EINTR) continue;
            const int saved = errno;
            ::close(fd);
            errno = saved;
            fail("cannot write", path);
        }
        done += static_cast<std::size_t>(n);
    }
    if (::ftruncate(fd, static_cast<off_t>(contents.size())) != 0) {
        const int saved = errno;
        ::close(fd);
        errno = saved;
        fail("cannot truncate", path);
    }
    ::close(fd);
}

std::optional<std::string> read_file(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void make_directories(const std::string& path, unsigned mode)
{
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) throw Error(ErrorKind::Kernel, "cannot create directory " + path + ": " + ec.message());
    ::chmod(path.c_str(), mode);
}

void remove_file(const std::string& path)
{
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) fail("cannot remove", path);
}

}  // namespace kvmnet::store
