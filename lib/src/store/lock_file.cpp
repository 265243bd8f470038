#include "store/lock_file.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
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

// A damaged LOCK's bytes never reach the terminal as they are.
std::string printable(std::string text) {
  for (char& c : text)
    if (c < 0x20 || c > 0x7e) c = '?';
  return text.substr(0, 64);
}

// A zombie (killed, not yet reaped by its parent) is dead: kill(pid, 0)
// still finds it, /proc says Z (or X).
bool zombie(std::int64_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() &&
         (line[paren + 2] == 'Z' || line[paren + 2] == 'X');
}

bool alive_here(const Holder& h) {
  if (h.host != host_name() || h.pid <= 0) return true;  // cannot tell: assume alive
  const bool found = ::kill(static_cast<pid_t>(h.pid), 0) == 0 || errno == EPERM;
  return found && !zombie(h.pid);
}

}  // namespace

bool LockFile::held(const std::filesystem::path& lock_path) {
  std::string text;
  try {
    text = read_file(lock_path);
  } catch (const IoError&) {
    return false;  // no LOCK
  }
  const Holder h = parse(text);
  return !h.host.empty() && h.pid > 0 && alive_here(h);
}

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

// A LOCK file is made whole before it appears: its text goes into a
// temporary, which is then hard-linked to LOCK (link fails if LOCK exists,
// atomically, also on NFS and Lustre). A writer killed at any moment so
// leaves either no LOCK or a complete one naming it, never an empty LOCK
// that would block the store for good.
LockFile LockFile::acquire(const std::filesystem::path& lock_path, const std::string& store) {
  const std::string me = host_name() + " " + std::to_string(::getpid()) + "\n";
  const std::string tmp = lock_path.string() + "." + std::to_string(::getpid()) + ".tmp";
  struct RemoveTmp {
    const std::string& path;
    ~RemoveTmp() { ::unlink(path.c_str()); }
  };
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (fd.get() < 0) throw_errno("open", tmp);
  const RemoveTmp remove_tmp{tmp};  // also when the disk is full
  write_all(fd.get(), me, tmp);
  fsync_or_throw(fd.get(), tmp);
  fd = Fd();
  const auto patience = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (::link(tmp.c_str(), lock_path.c_str()) == 0) {
      fsync_dir(lock_path.parent_path());
      return LockFile(lock_path);
    }
    // ENOENT: the holder's clean-up took our temporary; LOCK says who holds it.
    if (errno != EEXIST && errno != ENOENT) throw_errno("link", lock_path.string());

    std::string text;
    try {
      text = read_file(lock_path);
    } catch (const IoError&) {
      continue;  // released between our link and read: try again
    }
    const Holder holder = parse(text);
    // A LOCK without a holder is what a crash inside an older mpibatch's
    // acquire left (it wrote the text after creating the file): stale.
    const bool named = !holder.host.empty() && holder.pid > 0;
    if (named && alive_here(holder)) {
      // A killed run's rank 0 may take a second to go: wait a little.
      if (holder.pid != ::getpid() && std::chrono::steady_clock::now() < patience) {
        ::usleep(100000);
        --attempt;
        continue;
      }
      throw StoreLockedError("store " + store + " is being written by host " +
                             printable(holder.host) + " pid " + std::to_string(holder.pid) +
                             "; if that process is gone, remove " + lock_path.string());
    }
    // Stale lock. Rename it away first so that only one of several racing
    // processes breaks it.
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
