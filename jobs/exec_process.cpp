#include "exec_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace mpibatch::jobs {

namespace {

void keep_tail(std::string& tail, const char* data, std::size_t n) {
  tail.append(data, n);
  if (tail.size() > 2 * kTail) tail.erase(0, tail.size() - kTail);
}

// Our environment with settings ("NAME=VALUE") over it, as posix_spawn takes
// it: pointers into environ and into settings, which must outlive it.
std::vector<char*> environment(const std::vector<std::string>& settings) {
  std::vector<char*> out;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const bool replaced = std::any_of(settings.begin(), settings.end(), [&](const std::string& s) {
      const auto eq = s.find('=');
      return eq != std::string::npos && entry.size() > eq &&
             entry.substr(0, eq + 1) == std::string_view(s).substr(0, eq + 1);
    });
    if (!replaced) out.push_back(*e);
  }
  for (const auto& s : settings)
    if (s.find('=') != std::string::npos) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// Keeps the last line that is not blank of what passes through add().
class LastLine {
 public:
  explicit LastLine(std::string& last) : last_(last) {}
  void add(const char* data, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      if (data[i] == '\n') {
        finish();
      } else if (line_.size() < kMaxLine) {
        line_ += data[i];
      }
    }
  }

  // Ends the line so far (output need not end with a newline).
  void finish() {
    if (line_.find_first_not_of(" \t\r") != std::string::npos) last_.swap(line_);
    line_.clear();
  }

 private:
  std::string& last_;
  std::string line_;
};

}  // namespace

std::string hash_name(const std::string& identity) {
  char name[32];
  std::snprintf(name, sizeof name, "%016llx",
                static_cast<unsigned long long>(XXH64(identity.data(), identity.size(), 0)));
  return name;
}

OutputDir::~OutputDir() {
  if (fd_ >= 0) ::close(fd_);
}

int OutputDir::fd() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (fd_ < 0) fd_ = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0) throw std::runtime_error("cannot open " + path_ + ": " + std::strerror(errno));
  return fd_;
}

std::string output_name(const CommandTemplate& name, const std::vector<Value>& values) {
  std::string out = name.fill(values);
  std::replace(out.begin(), out.end(), '/', '_');
  std::replace(out.begin(), out.end(), '\0', '_');
  if (out.empty() || out == "." || out == ".." || out.size() > 250) {
    throw std::runtime_error(
        "--output-name gives the file name '" + out.substr(0, 60) +
        (out.size() > 60 ? "...' (" + std::to_string(out.size()) + " bytes)" : "'"));
  }
  return out;
}

OutputFiles::OutputFiles(const OutputSpec& spec, const Params& p, const std::string& identity) {
  if (!spec.dir) return;
  std::string base = hash_name(identity);
  if (spec.name) {
    std::vector<Value> values;
    for (const auto& n : spec.name->names()) values.emplace_back(p.text(n));
    base = output_name(*spec.name, values);
  }
  const int dir = spec.dir->fd();
  for (int i = 0; i < 2; ++i) {
    const std::string file = base + (i == 0 ? ".out" : ".err");
    const std::string where = spec.dir->path() + "/" + file;
    const int fd =
        ::openat(dir, file.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0) {  // ENXIO: a FIFO no one reads
      throw std::runtime_error("cannot write " + where + ": " +
                               (errno == ENXIO ? "not a regular file" : std::strerror(errno)));
    }
    struct stat st {};
    const char* wrong = ::fstat(fd, &st) != 0  ? "cannot fstat it"
                        : !S_ISREG(st.st_mode) ? "not a regular file"
                        : st.st_nlink > 1      ? "a hard link (it has other names)"
                                               : nullptr;
    if (wrong == nullptr && (::ftruncate(fd, 0) != 0 || ::fcntl(fd, F_SETFL, 0) != 0))
      wrong = std::strerror(errno);
    if (wrong == nullptr) f_[i] = ::fdopen(fd, "wb");
    if (f_[i] == nullptr) {
      ::close(fd);
      throw std::runtime_error("cannot write " + where + ": " + (wrong ? wrong : "fdopen"));
    }
  }
}

OutputFiles::~OutputFiles() {
  for (auto* x : f_)
    if (x != nullptr) std::fclose(x);
}

void OutputFiles::write(int stream, const char* data, std::size_t n) {
  if (f_[stream] != nullptr) std::fwrite(data, 1, n, f_[stream]);
}

Outcome run_command(const std::string& command, bool shell, const Launch& launch,
                    OutputFiles& files, double timeout) {
  std::vector<std::string> words =
      shell ? std::vector<std::string>{"/bin/sh", "-c", command} : split_words(command);
  if (words.empty()) throw std::runtime_error("empty command");
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  // Nothing else of ours: an inherited descriptor (Open MPI's singleton pipe,
  // a store's file) would outlive us in a command left running.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  if (!launch.workdir.empty())
    posix_spawn_file_actions_addchdir_np(&actions, launch.workdir.c_str());
  // Default dispositions and an empty mask: workers ignore the stop signals
  // (the master decides), but a command must be stoppable like any other.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  std::vector<char*> envp = environment(launch.env);
  const int rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    throw std::runtime_error("cannot run '" + words[0] + "'" +
                             (launch.workdir.empty() ? "" : " in " + launch.workdir) + ": " +
                             std::strerror(rc));
  }
  Outcome o;
  LastLine lines(o.last_line);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[1 << 14];
  using Clock = std::chrono::steady_clock;
  auto deadline = timeout > 0 ? Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                   std::chrono::duration<double>(timeout))
                              : Clock::time_point::max();
  int kills = 0;
  while (open_fds > 0) {
    int wait_ms = -1;
    if (deadline != Clock::time_point::max()) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        if (kills == 2) break;  // a child of the command keeps the pipes open
        ::kill(pid, kills == 0 ? SIGTERM : SIGKILL);
        o.timed_out = true;
        deadline = Clock::now() + std::chrono::seconds(kills == 0 ? 2 : 1);
        ++kills;
        continue;
      }
      wait_ms = static_cast<int>(std::min<long long>(left, 1 << 30));
    }
    if (::poll(fds, 2, wait_ms) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        keep_tail(i == 0 ? o.out : o.err, buf, static_cast<std::size_t>(n));
        if (i == 0) lines.add(buf, static_cast<std::size_t>(n));
        files.write(i, buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& fd : fds)
    if (fd.fd >= 0) ::close(fd.fd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) o.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) o.signal = WTERMSIG(status);
  for (auto* t : {&o.out, &o.err})
    if (t->size() > kTail) t->erase(0, t->size() - kTail);
  lines.finish();
  return o;
}

}  // namespace mpibatch::jobs
