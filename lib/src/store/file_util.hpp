// POSIX file helpers with checked errors (IoError names the call and path).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>

namespace mpibatch::detail {

// [[noreturn]] helper: throws IoError("<call> <path>: <strerror(errno)>").
[[noreturn]] void throw_errno(const char* call, const std::string& path);

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// A folder opened once, without following a link (O_DIRECTORY | O_NOFOLLOW).
// Paths under anchor() (/proc/self/fd/N) stay in this folder even if its name
// is later renamed or swapped for a symbolic link; messages name it as shown.
class Dir {
 public:
  Dir() = default;
  Dir(Fd fd, const std::filesystem::path& shown);
  Dir(Dir&& o) noexcept = default;
  Dir& operator=(Dir&& o) noexcept;
  ~Dir();
  int fd() const { return fd_.get(); }
  explicit operator bool() const { return static_cast<bool>(fd_); }
  const std::filesystem::path& anchor() const { return anchor_; }

 private:
  Fd fd_;
  std::filesystem::path anchor_;
};

Fd open_or_throw(const std::string& path, int flags, mode_t mode = 0644);
void write_all(int fd, std::string_view data, const std::string& path);
void fsync_or_throw(int fd, const std::string& path);
// Makes a rename or create in dir durable.
void fsync_dir(const std::filesystem::path& dir);
// Renames tmp over target and fsyncs the folder: readers see old or new, never half.
void atomic_replace(const std::filesystem::path& tmp, const std::filesystem::path& target);
// Gives from's file the name to as well: a hard link, or a copy (fsync'd)
// where the file system has none; then fsyncs to's folder. Throws IoError.
void link_or_copy(const std::filesystem::path& from, const std::filesystem::path& to);
// fsyncs an existing file by path.
void fsync_path(const std::filesystem::path& path);
std::string read_file(const std::filesystem::path& path);
std::string host_name();

}  // namespace mpibatch::detail
