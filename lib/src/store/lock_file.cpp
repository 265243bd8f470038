#include "store/lock_file.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>

#include "mpibatch/error.hpp"
#include "store/file_util.hpp"

namespace mpibatch::detail {

namespace {

struct Holder {
  std::string host;
  long pid = 0;
};

Holder parse(const std::string& text) {
  Holder h;
  std::istringstream in(text);
  in >> h.host >> h.pid;
  return h;
}

bool alive_here(const Holder& h) {
  if (h.host != host_name() || h.pid <= 0) return true;  // cannot tell: assume alive
  return ::kill(static_cast<pid_t>(h.pid), 0) == 0 || errno == EPERM;
}

}  // namespace

LockFile& LockFile::operator=(LockFile&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    o.path_.clear();
  }
  return *this;
}

void LockFile::release() noexcept {
  if (!path_.empty()) {
    ::unlink(path_.c_str());
    path_.clear();
  }
}

LockFile LockFile::acquire(const std::filesystem::path& lock_path, const std::string& store) {
  const std::string me = host_name() + " " + std::to_string(::getpid()) + "\n";
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int fd = ::open(lock_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      Fd owned(fd);
      write_all(fd, me, lock_path.string());
      fsync_or_throw(fd, lock_path.string());
      fsync_dir(lock_path.parent_path());
      return LockFile(lock_path);
    }
    if (errno != EEXIST) throw_errno("open", lock_path.string());

    std::string text;
    try {
      text = read_file(lock_path);
    } catch (const IoError&) {
      continue;  // released between our open and read: try again
    }
    const Holder holder = parse(text);
    if (alive_here(holder)) {
      throw StoreLockedError("store " + store + " is being written by host " + holder.host +
                             " pid " + std::to_string(holder.pid) +
                             "; if that process is gone, remove " + lock_path.string());
    }
    // Stale lock of a dead process on this host. Rename it away first so that
    // only one of several racing processes breaks it.
    const auto stale = lock_path.string() + ".stale." + std::to_string(::getpid());
    if (::rename(lock_path.c_str(), stale.c_str()) != 0) continue;
    std::string moved;
    try {
      moved = read_file(stale);
    } catch (const IoError&) {
    }
    if (moved != text) {
      // Someone else's fresh lock slipped in: put it back and report it.
      if (::link(stale.c_str(), lock_path.c_str()) != 0 && errno != EEXIST) {
        throw_errno("link", lock_path.string());
      }
    }
    ::unlink(stale.c_str());
  }
  throw StoreLockedError("store " + store + ": could not take the lock " + lock_path.string() +
                         " (it keeps changing hands)");
}

}  // namespace mpibatch::detail
