#include "engine/isolated_compute.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

#include "engine/channel.hpp"
#include "engine/crash_records.hpp"
#include "store/file_util.hpp"

extern char** environ;

namespace mpibatch::detail {

namespace {

constexpr int kIn = 3, kOut = 4;  // the compute process's descriptors

// The worker's stop signals, blocked in a compute process from its start
// until it ignores them: a Ctrl-C while one starts must not kill it.
sigset_t stop_signals() {
  sigset_t s;
  sigemptyset(&s);
  for (const int sig : {SIGINT, SIGTERM, SIGUSR1}) sigaddset(&s, sig);
  return s;
}

std::string& compute_program() {
  static std::string path = "/proc/self/exe";
  return path;
}

// Writes all of data; false when the reader is gone.
bool write_all(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

using Clock = std::chrono::steady_clock;

// Reads all of n; false at the end of input, or once deadline (when set) passed.
bool read_all(int fd, char* data, std::size_t n, std::optional<Clock::time_point> deadline) {
  while (n > 0) {
    if (deadline) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd, POLLIN, 0};
      const int ready =
          ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 60000)));
      if (ready == 0 || (ready < 0 && errno == EINTR)) continue;
      if (ready < 0) return false;
    }
    const ssize_t r = ::read(fd, data, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    data += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool send_message(int fd, const std::string& bytes) {
  const std::uint64_t n = bytes.size();
  return write_all(fd, reinterpret_cast<const char*>(&n), sizeof n) &&
         write_all(fd, bytes.data(), bytes.size());
}

// False at the end of input, when the writer died, or past deadline.
bool receive_message(int fd, std::string& bytes,
                     std::optional<Clock::time_point> deadline = std::nullopt) {
  std::uint64_t n = 0;
  if (!read_all(fd, reinterpret_cast<char*>(&n), sizeof n, deadline)) return false;
  if (n > (std::uint64_t{1} << 40)) return false;  // not our writer's
  bytes.resize(n);
  return read_all(fd, bytes.data(), n, deadline);
}

// What a status from waitpid says, as a failed task's message.
std::string death(int status) {
  if (WIFSIGNALED(status)) return crashed_by_signal(WTERMSIG(status));
  if (WIFEXITED(status))
    return kCrashedPrefix +
           ("its compute process exited with status " + std::to_string(WEXITSTATUS(status)));
  return kCrashedPrefix + std::string("its compute process ended");
}

// Appends row i of from to to (both of the same job).
void append_row(ResultBatch& to, const ResultBatch& from, std::size_t i) {
  RecordBatch& t = to.records;
  const RecordBatch& f = from.records;
  const std::size_t row = t.status.size();
  for (const std::uint32_t k : from.interrupted)
    if (k == i) to.interrupted.push_back(static_cast<std::uint32_t>(row));
  t.status.push_back(f.status[i]);
  t.start_time.push_back(f.start_time[i]);
  t.duration.push_back(f.duration[i]);
  std::size_t at = 0;
  for (std::size_t k = 0; k < i; ++k) at += f.result_sizes[k];
  t.results.append(f.results, at, f.result_sizes[i]);
  t.result_sizes.push_back(f.result_sizes[i]);
  at = 0;
  for (std::size_t k = 0; k < i; ++k) at += f.error_sizes[k];
  t.errors.append(f.errors, at, f.error_sizes[i]);
  t.error_sizes.push_back(f.error_sizes[i]);
  for (const auto& columns : {std::pair{&t.values, &f.values}, {&t.params, &f.params}}) {
    const std::vector<ValueColumn>& from_columns = *columns.second;
    for (std::size_t c = 0; c < from_columns.size(); ++c) {
      std::visit(
          [&](auto& column) {
            using Column = std::decay_t<decltype(column)>;
            column.push_back(std::get<Column>(from_columns[c])[i]);
          },
          (*columns.first)[c]);
    }
  }
}

}  // namespace

IsolatedCompute::IsolatedCompute(const ErasedJob& job, std::vector<std::string> argv,
                                 std::string hello, double task_timeout)
    : job_(job), argv_(std::move(argv)), hello_(std::move(hello)), task_timeout_(task_timeout) {
  ::signal(SIGPIPE, SIG_IGN);  // a process that died is seen by its pipe, not a signal
}

IsolatedCompute::~IsolatedCompute() {
  stop();
}

void IsolatedCompute::start() {
  int in[2], out[2];  // as the compute process sees them
  if (::pipe2(in, O_CLOEXEC) != 0) throw IoError(std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    throw IoError(std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], kIn);
  posix_spawn_file_actions_adddup2(&actions, out[1], kOut);
  posix_spawn_file_actions_addclosefrom_np(&actions, kOut + 1);
  std::vector<char*> args;
  for (auto& a : argv_) args.push_back(a.data());
  args.push_back(nullptr);
  std::string marker = std::string(kComputeProcessEnv) + "=3,4";
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::strncmp(*e, marker.c_str(), std::strlen(kComputeProcessEnv) + 1) != 0)
      env.push_back(*e);
  env.push_back(marker.data());
  env.push_back(nullptr);
  // SIGPIPE as the rank had it before it ignored it for its pipes.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  const sigset_t blocked = stop_signals();
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &blocked);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  const int rc =
      ::posix_spawn(&pid, compute_program().c_str(), &actions, &attr, args.data(), env.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  if (rc != 0) {
    ::close(in[1]);
    ::close(out[0]);
    throw Error("--isolate: cannot start a compute process: " + std::string(std::strerror(rc)));
  }
  pid_ = pid;
  to_ = in[1];
  from_ = out[0];
  // A process that died at once is seen by the exchange that follows.
  send_message(to_, hello_);
}

void IsolatedCompute::stop() {
  if (pid_ < 0) return;
  ::close(to_);  // its input ends: it exits
  ::close(from_);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  to_ = from_ = -1;
}

bool IsolatedCompute::exchange(const Batch& batch, ResultBatch& out, std::string& why) {
  if (pid_ < 0) start();
  std::string bytes;
  std::optional<Clock::time_point> deadline;
  const double limit = task_timeout_ * static_cast<double>(batch.sizes.size());
  if (task_timeout_ > 0) {
    deadline = Clock::now() +
               std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limit));
  }
  if (send_message(to_, to_bytes(batch)) && receive_message(from_, bytes, deadline)) {
    out = from_bytes<ResultBatch>(bytes);
    if (const std::string bad = misfit(out, batch.sizes.size(), job_.info); bad.empty())
      return true;
  }
  // Dead, or what came is not an answer: take it down and say how it ended.
  ::close(to_);
  ::close(from_);
  int status = 0;
  ::kill(pid_, SIGKILL);  // no-op when it is gone; a live one sent garbage
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  to_ = from_ = -1;
  if (deadline && Clock::now() >= *deadline) {
    char text[80];
    std::snprintf(text, sizeof text, "timed out after %g s (--task-timeout)", limit);
    why = text;
  } else {
    why = death(status);
  }
  return false;
}

ResultBatch IsolatedCompute::compute(const Batch& batch) {
  ResultBatch out;
  std::string why;
  if (exchange(batch, out, why)) return out;
  // Each task alone, in order, in a new process when one died.
  const std::size_t n = batch.sizes.size();
  ResultBatch all;
  std::size_t at = 0;
  for (std::size_t i = 0; i < n; ++i) {
    Batch one;
    one.inputs.assign(batch.inputs, at, batch.sizes[i]);
    one.sizes.push_back(batch.sizes[i]);
    at += batch.sizes[i];
    ResultBatch r;
    if (!exchange(one, r, why)) {
      ErasedJob failed = job_;  // a failed row with its params, as compute() makes it
      failed.call = [&](std::string_view input, std::vector<Value>&,
                        std::vector<Value>& params) -> Bytes {
        if (job_.params) job_.params(input, params);
        throw Error(why);
      };
      r = detail::compute(failed, one);
    }
    if (i == 0) {
      all.records.values = r.records.values;
      all.records.params = r.records.params;
      for (auto* columns : {&all.records.values, &all.records.params})
        for (auto& c : *columns) std::visit([](auto& v) { v.clear(); }, c);
    }
    append_row(all, r, 0);
    all.seconds += r.seconds;
  }
  return all;
}

void set_compute_program(const std::string& path) {
  // Held open and started through the link to it, so that compute processes
  // run this very binary, as /proc/self/exe would, even when the file is
  // rebuilt or reinstalled during the run.
  static Fd held;
  held = Fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  compute_program() =
      held ? "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(held.get()) : path;
}

std::string read_compute_hello() {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the worker
  // The worker decides when to stop; its stop signals are not ours.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGTERM, SIG_IGN);
  ::signal(SIGUSR1, SIG_IGN);
  const sigset_t blocked = stop_signals();  // blocked since the spawn; any pending is dropped
  ::sigprocmask(SIG_UNBLOCK, &blocked, nullptr);
  std::string hello;
  if (!receive_message(kIn, hello)) hello.clear();
  return hello;
}

int serve_compute_process(const ErasedJob& job) {
  std::string bytes;
  try {
    while (receive_message(kIn, bytes)) {
      const ResultBatch r = compute(job, from_bytes<Batch>(bytes));
      if (!send_message(kOut, to_bytes(r))) return 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpibatch: compute process: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace mpibatch::detail
