// exec: each task is a command line, run with posix_spawn (through /bin/sh
// only when shell is true), with its exit code, signal, duration and the
// last few KiB of its output recorded. A non-zero exit or a signal fails
// the task, with the code and the end of stderr in the message.
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "builtin_jobs.hpp"
#include "exec_template.hpp"
#include "mpibatch/command_line.hpp"
#include "mpibatch/error.hpp"

extern char** environ;

namespace mpibatch::jobs {

namespace {

constexpr std::size_t kTail = 4096;

void keep_tail(std::string& tail, const char* data, std::size_t n) {
  tail.append(data, n);
  if (tail.size() > 2 * kTail) tail.erase(0, tail.size() - kTail);
}

struct Outcome {
  int exit_code = -1;
  int signal = 0;
  bool timed_out = false;
  std::string out, err;
};

// Full output files, when asked for: DIR/<xxh64 of the command>.out and .err.
struct OutputFiles {
  std::FILE* f[2] = {nullptr, nullptr};
  OutputFiles(const std::string& dir, const std::string& command) {
    if (dir.empty()) return;
    char name[32];
    std::snprintf(name, sizeof name, "%016llx",
                  static_cast<unsigned long long>(XXH64(command.data(), command.size(), 0)));
    const std::string base = dir + "/" + name;
    for (int i = 0; i < 2; ++i) {
      const std::string path = base + (i == 0 ? ".out" : ".err");
      f[i] = std::fopen(path.c_str(), "wb");
      if (f[i] == nullptr)
        throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
    }
  }
  ~OutputFiles() {
    for (auto* x : f)
      if (x != nullptr) std::fclose(x);
  }
};

// timeout (seconds, 0: none): then SIGTERM, and SIGKILL 2 s later.
Outcome run_command(const std::string& command, bool shell, const std::string& output_dir,
                    double timeout) {
  OutputFiles files(output_dir, command);
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
  const int rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    throw std::runtime_error("cannot run '" + words[0] + "': " + std::strerror(rc));
  }
  Outcome o;
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
        if (files.f[i] != nullptr) std::fwrite(buf, 1, static_cast<std::size_t>(n), files.f[i]);
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
  return o;
}

std::string hex(XXH128_hash_t h) {
  char out[33];
  std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return out;
}

// The digest of a file's bytes (XXH3-128, hex). Throws UsageError naming
// the file when it cannot be read.
std::string file_digest(const std::string& path, const std::string& option) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw UsageError(option + " " + path + ": " + std::strerror(errno));
  XXH3_state_t* state = XXH3_createState();
  XXH3_128bits_reset(state);
  char buf[1 << 16];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) XXH3_128bits_update(state, buf, n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  const XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  if (failed) throw UsageError(option + " " + path + ": read error");
  return hex(h);
}

std::vector<std::string> comma_list(const std::string& text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at <= text.size() && !text.empty()) {
    const auto comma = std::min(text.find(',', at), text.size());
    if (comma > at) out.push_back(text.substr(at, comma - at));
    at = comma + 1;
  }
  return out;
}

// What a task's result depends on besides its command: the --depends files
// shared by every task and, with --depends-param, the file each task names.
// The digest of their contents is the row's `depends` value (so part of the
// key); "" when there are none. Each distinct file is read once.
class Depends {
 public:
  Depends(const std::string& files, std::vector<int> params) : params_(std::move(params)) {
    for (const auto& f : comma_list(files)) shared_ += file_digest(f, "--depends");
  }
  std::string of(const std::vector<Value>& inputs) {
    if (shared_.empty() && params_.empty()) return {};
    std::string all = shared_;
    for (int p : params_) {
      const auto& path = std::get<std::string>(inputs.at(static_cast<std::size_t>(p)));
      auto it = seen_.find(path);
      if (it == seen_.end()) it = seen_.emplace(path, file_digest(path, "--depends-param")).first;
      all += it->second;
    }
    return hex(XXH3_128bits(all.data(), all.size()));
  }

 private:
  std::string shared_;
  std::vector<int> params_;  // inputs whose values are paths
  std::unordered_map<std::string, std::string> seen_;
};

// --cmd TEMPLATE: each task's command is the template with its {name}
// placeholders taking the task's values (exec_template.hpp: each value one
// argument, or shell-quoted, unless --unquoted); without --cmd, tasks give
// the command itself. A row is (command, shell, depends): what decides the
// result, nothing else (--output-dir is bound on every rank instead).
RowPlan plan_exec_rows(const Params& o) {
  const std::string output_dir = o.text("output_dir");
  const bool shell = o.flag("shell");
  if (!output_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(output_dir, ec);
    if (ec) throw UsageError("--output-dir " + output_dir + ": " + ec.message());
  }
  RowPlan plan;
  const std::string cmd = o.text("cmd");
  const std::vector<std::string> depends_params = comma_list(o.text("depends_param"));
  if (cmd.empty()) {
    if (o.flag("unquoted")) throw UsageError("--unquoted is for --cmd templates");
    if (!depends_params.empty())
      throw UsageError("--depends-param names a {placeholder} of --cmd: give --cmd");
    Depends depends(o.text("depends"), {});
    plan.params = {std::string("shell=") + (shell ? "true" : "false"), "depends=" + depends.of({})};
    return plan;
  }
  using Mode = CommandTemplate::Mode;
  const auto tmpl = std::make_shared<const CommandTemplate>(cmd, o.flag("unquoted") ? Mode::raw
                                                                 : shell            ? Mode::shell
                                                                                    : Mode::words);
  for (const auto& name : tmpl->names())
    plan.inputs.push_back(Field{name, FieldType::string, "", ""});
  plan.inputs_name = "exec --cmd";
  std::vector<int> path_inputs;
  for (const auto& name : depends_params) {
    const auto& names = tmpl->names();
    const auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end())
      throw UsageError("--depends-param " + name + ": --cmd has no {" + name + "}");
    path_inputs.push_back(static_cast<int>(it - names.begin()));
  }
  auto depends = std::make_shared<Depends>(o.text("depends"), std::move(path_inputs));
  auto number = std::make_shared<std::uint64_t>(0);  // {#}: from 1, in the run's order
  plan.map = [tmpl, shell, depends, number](const std::vector<Value>& in, std::vector<Value>& row) {
    row.clear();
    row.emplace_back(std::in_place_type<std::string>, tmpl->fill(in, ++*number));
    row.emplace_back(std::in_place_type<bool>, shell);
    row.emplace_back(std::in_place_type<std::string>, depends->of(in));
  };
  return plan;
}

// Whether the run's stop killed the command. A stop signal reaches the
// command and its worker one after the other (Slurm signals a step's
// processes in turn), so a command killed by one waits a moment for the
// worker's own before it counts as a failure.
bool stopped_by_run(int sig) {
  if (sig != SIGINT && sig != SIGTERM && sig != SIGUSR1) return false;
  for (int i = 0; i < 200 && !stop_signalled(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return stop_signalled();
}

TaskFn exec_fn(const std::string& output_dir, double timeout) {
  return [output_dir, timeout](const Params& p) {
    const auto t0 = std::chrono::steady_clock::now();
    const Outcome o = run_command(p.text("command"), p.flag("shell"), output_dir, timeout);
    if (o.timed_out) {
      char secs[32];
      std::snprintf(secs, sizeof secs, "%g", timeout);
      throw std::runtime_error(std::string("timed out after ") + secs +
                               " s (--task-timeout); stderr: " + o.err);
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (o.signal != 0 && stopped_by_run(o.signal)) {
      throw InterruptedError("cut short by the run's stop (signal " + std::to_string(o.signal) +
                             ")");
    }
    if (o.signal != 0) {
      throw std::runtime_error("killed by signal " + std::to_string(o.signal) +
                               "; stderr: " + o.err);
    }
    if (o.exit_code != 0) {
      throw std::runtime_error("exit code " + std::to_string(o.exit_code) + "; stderr: " + o.err);
    }
    return std::vector<Value>{std::int64_t{o.exit_code}, std::int64_t{o.signal}, secs, o.out,
                              o.err};
  };
}

}  // namespace

CommandJob exec_job() {
  // Version 2: a row is (command, shell, depends); version 1 also held the
  // output folder, so changing --output-dir reran everything.
  CommandJob job{
      {"exec",
       2,
       "runs each task's command line (no shell unless shell is true); a non-zero exit fails the "
       "task",
       {{"command", FieldType::string, "", "the command line"},
        {"shell", FieldType::boolean, "", "run it with /bin/sh -c (mpibatch run exec --shell)"},
        {"depends", FieldType::string, "",
         "digest of the files the result depends on (--depends, --depends-param), or empty"}},
       {{"exit_code", FieldType::int64, "", "the exit code"},
        {"signal", FieldType::int64, "", "the signal that ended it, or 0"},
        {"seconds", FieldType::float64, "s", "wall time"},
        {"stdout_tail", FieldType::string, "", "the last 4 KiB of standard output"},
        {"stderr_tail", FieldType::string, "", "the last 4 KiB of standard error"}}},
      exec_fn("", 0)};
  job.run_options = {
      {"cmd", FieldType::string, "",
       "a command template; {name} takes each task's value of name (from --grid, --param or "
       "--tasks)"},
      {"shell", FieldType::boolean, "", "run each command with /bin/sh -c (default: no shell)"},
      {"unquoted", FieldType::boolean, "",
       "paste --cmd's values into the command as they are, to be split (and with --shell "
       "expanded) with it; by default each value is one argument"},
      {"output_dir", FieldType::string, "",
       "keep each command's full stdout and stderr in DIR/<hash of the command>.out and .err "
       "(not part of the key)"},
      {"task_timeout", FieldType::float64, "s",
       "SECONDS: a command still running then gets SIGTERM (SIGKILL 2 s later) and its task "
       "fails; retries apply (not part of the key)"},
      {"depends", FieldType::string, "",
       "FILE[,FILE...]: files every command's result depends on; a change of their content "
       "reruns the tasks"},
      {"depends_param", FieldType::string, "",
       "NAME[,NAME...]: --cmd placeholders whose values are files a task depends on; a change "
       "of one reruns exactly the tasks that name it"}};
  job.plan_rows = plan_exec_rows;
  job.bind = [](const Params& o) {
    if (o.number("task_timeout") < 0) throw UsageError("--task-timeout must be >= 0 seconds");
    return exec_fn(o.text("output_dir"), o.number("task_timeout"));
  };
  return job;
}

}  // namespace mpibatch::jobs
