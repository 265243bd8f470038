#include "store/file_util.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/shown_paths.hpp"
#include "mpibatch/error.hpp"

namespace mpibatch::detail {

void throw_errno(const char* call, const std::string& path) {
  throw IoError(std::string(call) + " " + path + ": " + std::strerror(errno));
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Dir::Dir(Fd fd, const std::filesystem::path& shown)
    : fd_(std::move(fd)), anchor_("/proc/self/fd/" + std::to_string(fd_.get())) {
  register_anchor(fd_.get(), shown.string());
}

Dir& Dir::operator=(Dir&& o) noexcept {
  if (this != &o) {
    if (fd_) unregister_anchor(fd_.get());
    fd_ = std::move(o.fd_);
    anchor_ = std::move(o.anchor_);
  }
  return *this;
}

Dir::~Dir() {
  if (fd_) unregister_anchor(fd_.get());
}

Fd open_or_throw(const std::string& path, int flags, mode_t mode) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) throw_errno("open", path);
  return Fd(fd);
}

void write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("write", path);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

void fsync_or_throw(int fd, const std::string& path) {
  if (::fsync(fd) != 0) throw_errno("fsync", path);
}

void fsync_dir(const std::filesystem::path& dir) {
  Fd fd = open_or_throw(dir.empty() ? "." : dir.string(), O_RDONLY | O_DIRECTORY);
  fsync_or_throw(fd.get(), dir.string());
}

void fsync_path(const std::filesystem::path& path) {
  Fd fd = open_or_throw(path.string(), O_RDONLY | O_NOFOLLOW);
  fsync_or_throw(fd.get(), path.string());
}

void atomic_replace(const std::filesystem::path& tmp, const std::filesystem::path& target) {
  fsync_path(tmp);
  if (::rename(tmp.c_str(), target.c_str()) != 0) throw_errno("rename", tmp.string());
  fsync_dir(target.parent_path());
}

void link_or_copy(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (::link(from.c_str(), to.c_str()) != 0) {
    std::error_code ec;
    std::filesystem::copy_file(from, to, ec);
    if (ec)
      throw IoError("cannot link or copy " + from.string() + " to " + to.string() + ": " +
                    ec.message());
    fsync_path(to);
  }
  fsync_dir(to.parent_path());
}

std::string read_file(const std::filesystem::path& path) {
  Fd fd = open_or_throw(path.string(), O_RDONLY | O_NOFOLLOW);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("read", path.string());
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

}  // namespace mpibatch::detail
