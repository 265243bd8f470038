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
#include <mutex>
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

// Where full output goes (--output-dir), opened on first use (rank 0 makes
// it after the workers bound their function) and then kept: files are
// opened relative to it, never through a symlink in their place.
class OutputDir {
 public:
  explicit OutputDir(std::string path) : path_(std::move(path)) {}
  ~OutputDir() {
    if (fd_ >= 0) ::close(fd_);
  }
  const std::string& path() const { return path_; }
  int fd() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (fd_ < 0) fd_ = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error("cannot open " + path_ + ": " + std::strerror(errno));
    return fd_;
  }

 private:
  std::string path_;
  std::mutex mutex_;
  int fd_ = -1;
};

// --output-name: a task's output file name from its placeholder values,
// each '/' in them made '_'. Throws std::runtime_error (the task fails)
// for a name that is empty, "." or "..".
std::string output_name(const CommandTemplate& name, const std::vector<Value>& values) {
  std::vector<Value> safe = values;
  for (auto& v : safe)
    std::replace(std::get<std::string>(v).begin(), std::get<std::string>(v).end(), '/', '_');
  std::string out = name.fill(safe);
  if (out.empty() || out == "." || out == "..")
    throw std::runtime_error("--output-name gives the file name '" + out + "'");
  return out;
}

std::string hash_name(const std::string& command) {
  char name[32];
  std::snprintf(name, sizeof name, "%016llx",
                static_cast<unsigned long long>(XXH64(command.data(), command.size(), 0)));
  return name;
}

// What to do with a command's full output: nothing, or DIR/NAME.out and .err.
struct OutputSpec {
  std::shared_ptr<OutputDir> dir;               // null: no files
  std::shared_ptr<const CommandTemplate> name;  // null: the command's xxh64
};

// The files of one command, truncated if they exist (a rerun replaces them).
struct OutputFiles {
  std::FILE* f[2] = {nullptr, nullptr};
  OutputFiles(const OutputSpec& spec, const Params& p, const std::string& command) {
    if (!spec.dir) return;
    std::string base = hash_name(command);
    if (spec.name) {
      std::vector<Value> values;
      for (const auto& n : spec.name->names()) values.emplace_back(p.text(n));
      base = output_name(*spec.name, values);
    }
    const int dir = spec.dir->fd();
    for (int i = 0; i < 2; ++i) {
      const std::string file = base + (i == 0 ? ".out" : ".err");
      const int fd =
          ::openat(dir, file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (fd >= 0) f[i] = ::fdopen(fd, "wb");
      if (f[i] == nullptr) {
        const int err = errno;
        if (fd >= 0) ::close(fd);
        throw std::runtime_error("cannot write " + spec.dir->path() + "/" + file + ": " +
                                 std::strerror(err));
      }
    }
  }
  ~OutputFiles() {
    for (auto* x : f)
      if (x != nullptr) std::fclose(x);
  }
};

// timeout (seconds, 0: none): then SIGTERM, and SIGKILL 2 s later.
Outcome run_command(const std::string& command, bool shell, OutputFiles& files, double timeout) {
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

// --output-dir and --output-name. Throws UsageError.
OutputSpec output_spec(const Params& o) {
  OutputSpec spec;
  const std::string& name = o.text("output_name");
  if (o.text("output_dir").empty()) {
    if (!name.empty()) throw UsageError("--output-name names files in --output-dir: give it");
    return spec;
  }
  spec.dir = std::make_shared<OutputDir>(o.text("output_dir"));
  if (!name.empty()) {
    if (name.find('/') != std::string::npos)
      throw UsageError("--output-name '" + name + "': a file name, without '/'");
    spec.name = std::make_shared<const CommandTemplate>(name, CommandTemplate::Mode::raw);
    if (name.find("{#}") != std::string::npos)
      throw UsageError("--output-name '" + name + "': {#} cannot name files (use placeholders)");
  }
  return spec;
}

// Rank 0's check that --output-name gives tasks of different commands
// different files (a task run twice writes its own again): a hash of each
// name and of its command, 16 bytes a name.
class OutputNames {
 public:
  OutputNames(std::shared_ptr<const CommandTemplate> name, const std::vector<std::string>& inputs,
              std::string dir)
      : name_(std::move(name)), dir_(std::move(dir)) {
    if (!name_) return;
    for (const auto& n : name_->names()) {
      const auto it = std::find(inputs.begin(), inputs.end(), n);
      if (it == inputs.end())
        throw UsageError("--output-name: {" + n + "} is not a placeholder of --cmd");
      slots_.push_back(static_cast<std::size_t>(it - inputs.begin()));
    }
  }
  void check(const std::vector<Value>& inputs, const std::string& command) {
    if (!name_) return;
    std::vector<Value> values;
    for (auto s : slots_) values.push_back(inputs.at(s));
    std::string name;
    try {
      name = output_name(*name_, values);
    } catch (const std::runtime_error& e) {
      throw UsageError(std::string(e.what()) + " for the command " + command);
    }
    const auto [it, added] = seen_.try_emplace(XXH3_64bits(name.data(), name.size()),
                                               XXH3_64bits(command.data(), command.size()));
    if (!added && it->second != XXH3_64bits(command.data(), command.size())) {
      throw UsageError("--output-name: " + dir_ + "/" + name + ".out would hold the output of " +
                       command + " and of an earlier task's other command; add a placeholder");
    }
  }

 private:
  std::shared_ptr<const CommandTemplate> name_;
  std::string dir_;
  std::vector<std::size_t> slots_;
  std::unordered_map<std::uint64_t, std::uint64_t> seen_;
};

// --cmd TEMPLATE: each task's command is the template with its {name}
// placeholders taking the task's values (exec_template.hpp: each value one
// argument, or shell-quoted, unless --unquoted); without --cmd, tasks give
// the command itself. A row's key is (command, shell, depends): what decides
// the result, nothing else (--output-dir is bound on every rank instead);
// the inputs follow them in the row, stored but not keyed.
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
  const OutputSpec output = output_spec(o);
  if (cmd.empty()) {
    if (output.name) throw UsageError("--output-name takes --cmd's placeholders: give --cmd");
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
  plan.keep_inputs = true;  // each placeholder's value a column, as is a CSV file's every column
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
  auto names = std::make_shared<OutputNames>(output.name, tmpl->names(), o.text("output_dir"));
  plan.map = [tmpl, shell, depends, number, names](const std::vector<Value>& in,
                                                   std::vector<Value>& row) {
    row.clear();
    row.emplace_back(std::in_place_type<std::string>, tmpl->fill(in, ++*number));
    row.emplace_back(std::in_place_type<bool>, shell);
    row.emplace_back(std::in_place_type<std::string>, depends->of(in));
    names->check(in, std::get<std::string>(row[0]));
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

// The last few lines of a command's stderr, on one line: what a message
// needs (a Python traceback's last lines name the exception); the whole
// tail is in the stderr_tail column.
std::string last_lines(const std::string& text) {
  constexpr int kLines = 3;
  std::vector<std::string_view> lines;
  std::string_view rest(text);
  while (!rest.empty() && lines.size() < kLines) {
    while (!rest.empty() && (rest.back() == '\n' || rest.back() == '\r')) rest.remove_suffix(1);
    const auto nl = rest.find_last_of('\n');
    const std::string_view line = nl == std::string_view::npos ? rest : rest.substr(nl + 1);
    if (!line.empty()) lines.push_back(line);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(0, nl);
  }
  std::string out;
  for (auto it = lines.rbegin(); it != lines.rend(); ++it)
    out += (out.empty() ? "" : " | ") + std::string(*it);
  if (out.size() > 1024) out = "..." + out.substr(out.size() - 1021);
  return out;
}

TaskFn exec_fn(const OutputSpec& output, double timeout) {
  return [output, timeout](const Params& p) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string& command = p.text("command");
    OutputFiles files(output, p, command);
    const Outcome o = run_command(command, p.flag("shell"), files, timeout);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::vector<Value> values{std::int64_t{o.exit_code}, std::int64_t{o.signal}, secs, o.out,
                              o.err};
    const std::string err = o.err.empty() ? "" : "; stderr: " + last_lines(o.err);
    if (o.timed_out) {
      char limit[32];
      std::snprintf(limit, sizeof limit, "%g", timeout);
      throw TaskFailed(std::string("timed out after ") + limit + " s (--task-timeout)" + err,
                       std::move(values));
    }
    if (o.signal != 0 && stopped_by_run(o.signal)) {
      throw InterruptedError("cut short by the run's stop (signal " + std::to_string(o.signal) +
                             ")");
    }
    if (o.signal != 0)
      throw TaskFailed("killed by signal " + std::to_string(o.signal) + err, std::move(values));
    if (o.exit_code != 0)
      throw TaskFailed("exit code " + std::to_string(o.exit_code) + err, std::move(values));
    return values;
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
      exec_fn({}, 0)};
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
      {"output_name", FieldType::string, "",
       "NAME: name the files in --output-dir NAME.out and NAME.err, NAME a template of --cmd's "
       "placeholders ('/' in a value becomes '_'), e.g. {sample}_{alpha}; tasks of different "
       "commands must get different names (not part of the key)"},
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
    return exec_fn(output_spec(o), o.number("task_timeout"));
  };
  return job;
}

}  // namespace mpibatch::jobs
