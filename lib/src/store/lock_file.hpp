// The store's write lock: a file created with O_EXCL holding "host pid".
// Works where HDF5's and POSIX advisory locks do not (Lustre, NFS): O_EXCL
// creation is atomic there. A lock left by a dead process on this host is
// taken over; one from another host must be removed by hand (the error says so).
#pragma once

#include <filesystem>

namespace mpibatch::detail {

class LockFile {
 public:
  // Throws StoreLockedError naming the holder's host and pid, or IoError.
  // store names the store in messages.
  static LockFile acquire(const std::filesystem::path& lock_path, const std::string& store);
  // Whether a live process holds the lock at lock_path (one on another
  // host counts as live: it cannot be told from here).
  static bool held(const std::filesystem::path& lock_path);
  LockFile() = default;
  LockFile(LockFile&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  LockFile& operator=(LockFile&& o) noexcept;
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;
  ~LockFile() { release(); }
  void release() noexcept;

 private:
  explicit LockFile(std::filesystem::path p) : path_(std::move(p)) {}
  std::filesystem::path path_;
};

}  // namespace mpibatch::detail
