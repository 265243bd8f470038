// exec: each task is a command line, run with posix_spawn (through /bin/sh
// only when shell is true), with its exit code, signal, duration and the
// last few KiB of its output recorded. A non-zero exit or a signal fails
// the task, with the code and the end of stderr in the message.
#include <sys/stat.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "builtin_jobs.hpp"
#include "exec_json.hpp"
#include "exec_process.hpp"
#include "exec_template.hpp"
#include "mpibatch/command_line.hpp"
#include "mpibatch/error.hpp"

namespace mpibatch::jobs {

namespace {

std::string hex(XXH128_hash_t h) {
  char out[33];
  std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return out;
}

// The digest of a file's bytes (XXH3-128, hex). Rank 0 plans the rows twice
// (the check, then the run): a digest is read once and reused while the
// file's device, inode, size and modification time stay the same. Throws
// UsageError naming the file when it cannot be read.
std::string file_digest(const std::string& path, const std::string& option) {
  using Stamp = std::array<std::int64_t, 5>;
  static std::mutex mutex;
  static std::unordered_map<std::string, std::pair<Stamp, std::string>> taken;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw UsageError(option + " " + path + ": " + std::strerror(errno));
  struct stat st {};
  Stamp stamp{};
  if (::fstat(::fileno(f), &st) == 0) {
    stamp = {static_cast<std::int64_t>(st.st_dev), static_cast<std::int64_t>(st.st_ino),
             static_cast<std::int64_t>(st.st_size), static_cast<std::int64_t>(st.st_mtim.tv_sec),
             static_cast<std::int64_t>(st.st_mtim.tv_nsec)};
    std::lock_guard<std::mutex> lock(mutex);
    if (const auto it = taken.find(path); it != taken.end() && it->second.first == stamp) {
      std::fclose(f);
      return it->second.second;
    }
  }
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
  std::lock_guard<std::mutex> lock(mutex);
  if (stamp != Stamp{}) taken[path] = {stamp, hex(h)};
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
    spec.name = std::make_shared<const CommandTemplate>(name, CommandTemplate::Mode::raw);
    if (name.find("{#}") != std::string::npos)
      throw UsageError("--output-name '" + name + "': {#} cannot name files (use placeholders)");
  }
  return spec;
}

// What tells tasks apart for their output files: the command, and its
// folder and environment when the run sets them (null: not set).
std::string task_identity(const std::string& command, const std::string* workdir,
                          const std::string* env) {
  if (workdir == nullptr && env == nullptr) return command;
  return command + '\0' + (workdir ? *workdir : "") + '\0' + (env ? *env : "");
}

// Rank 0's check that tasks which differ get different output files (a
// task run twice writes its own again), by --output-name or by the default
// hash names: a hash of each name and of its task, 16 bytes a task.
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
  // identity: what tells tasks apart (task_identity()).
  void check(const std::vector<Value>& inputs, const std::string& command,
             const std::string& identity) {
    if (dir_.empty()) return;
    std::string name = hash_name(identity);
    if (name_) {
      std::vector<Value> values;
      for (auto s : slots_) values.push_back(inputs.at(s));
      try {
        name = output_name(*name_, values);
      } catch (const std::runtime_error& e) {
        throw UsageError(std::string(e.what()) + " for the command " + command);
      }
    }
    const auto id = XXH3_64bits(identity.data(), identity.size());
    const auto [it, added] = seen_.try_emplace(XXH3_64bits(name.data(), name.size()), id);
    if (!added && it->second != id) {
      throw UsageError(std::string(name_ ? "--output-name" : "--output-dir") + ": " + dir_ + "/" +
                       name + ".out would hold the output of " + command +
                       " and of an earlier, other task; " +
                       (name_ ? "add a placeholder" : "give --output-name"));
    }
  }

 private:
  std::shared_ptr<const CommandTemplate> name_;
  std::string dir_;
  std::vector<std::size_t> slots_;
  std::unordered_map<std::uint64_t, std::uint64_t> seen_;
};

// A template of raw values (--workdir, --env's values) over the inputs.
class InputTemplate {
 public:
  InputTemplate(const std::string& text, std::vector<Field>& inputs)
      : t_(text, CommandTemplate::Mode::raw, /*constant_ok=*/true) {
    for (const auto& n : t_.names()) {
      auto it =
          std::find_if(inputs.begin(), inputs.end(), [&](const Field& f) { return f.name == n; });
      if (it == inputs.end()) it = inputs.insert(it, Field{n, FieldType::string, "", ""});
      slots_.push_back(static_cast<std::size_t>(it - inputs.begin()));
    }
  }
  std::string fill(const std::vector<Value>& in) const {
    std::vector<Value> values;
    for (auto s : slots_) values.push_back(in.at(s));
    return t_.fill(values);
  }

 private:
  CommandTemplate t_;
  std::vector<std::size_t> slots_;
};

// --workdir, --env and --json-result: params after (command, shell,
// depends), part of the key, and present only when given, so that the keys
// of runs without them stay as they were.
class Keyed {
 public:
  Keyed(const Params& o, std::vector<Field>& inputs, const std::vector<Field>& results) {
    if (const std::string& w = o.text("workdir"); !w.empty()) {
      workdir_ = std::make_unique<InputTemplate>(w, inputs);
      fields.push_back(Field{"workdir", FieldType::string, "", "the working folder (--workdir)"});
    }
    std::istringstream lines(o.text("env"));
    for (std::string line; std::getline(lines, line);) {
      static const std::regex kName("[A-Za-z_][A-Za-z0-9_]*");
      const auto eq = line.find('=');
      if (eq == std::string::npos || !std::regex_match(line.substr(0, eq), kName))
        throw UsageError("--env '" + line + "': expected NAME=VALUE, NAME of letters, digits, _");
      env_.emplace_back(line.substr(0, eq + 1), InputTemplate(line.substr(eq + 1), inputs));
    }
    if (!env_.empty())
      fields.push_back(Field{"env", FieldType::string, "", "NAME=VALUE lines set (--env)"});
    if (const std::string& j = o.text("json_result"); !j.empty()) {
      json_fields = json_result_fields(j, results);
      json_ = json_result_spec(json_fields);
      fields.push_back(Field{"json_result", FieldType::string, "", "--json-result's fields"});
    }
  }
  // Appends the keyed values to row (after command, shell and depends).
  // Throws UsageError for a value a folder or a variable cannot hold.
  void values(const std::vector<Value>& in, std::vector<Value>& row) const {
    if (workdir_) {
      std::string dir = workdir_->fill(in);
      if (dir.find('\0') != std::string::npos)
        throw UsageError("--workdir: a task's folder holds a NUL byte");
      row.emplace_back(std::in_place_type<std::string>, std::move(dir));
    }
    if (!env_.empty()) {
      std::string env;
      for (const auto& [name, value] : env_) {
        const std::string v = value.fill(in);
        if (v.find_first_of(std::string_view("\n\0", 2)) != std::string::npos) {
          throw UsageError("--env " + name + ": a task's value holds a newline or a NUL byte, " +
                           "which an environment variable cannot");
        }
        env += (env.empty() ? "" : "\n") + name + v;
      }
      row.emplace_back(std::in_place_type<std::string>, std::move(env));
    }
    if (!json_.empty()) row.emplace_back(std::in_place_type<std::string>, json_);
  }
  // The task's identity (task_identity()) from its row, as values() made it.
  std::string identity(const std::vector<Value>& row) const {
    std::size_t at = 3;
    const std::string* dir = workdir_ ? &std::get<std::string>(row.at(at++)) : nullptr;
    const std::string* env = env_.empty() ? nullptr : &std::get<std::string>(row.at(at++));
    return task_identity(std::get<std::string>(row.at(0)), dir, env);
  }
  std::vector<Field> fields, json_fields;

 private:
  std::unique_ptr<InputTemplate> workdir_;
  std::vector<std::pair<std::string, InputTemplate>> env_;
  std::string json_;
};

// --cmd TEMPLATE: each task's command is the template with its {name}
// placeholders taking the task's values (exec_template.hpp: each value one
// argument, or shell-quoted, unless --unquoted); without --cmd, tasks give
// the command itself. A row's key is (command, shell, depends) and what
// Keyed adds: what decides the result, nothing else (--output-dir is bound
// on every rank instead); the inputs follow, stored but not keyed.
RowPlan plan_exec_rows(const Params& o, const std::vector<Field>& results) {
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
  using Mode = CommandTemplate::Mode;
  std::shared_ptr<const CommandTemplate> tmpl;
  if (cmd.empty()) {
    if (output.name) throw UsageError("--output-name takes --cmd's placeholders: give --cmd");
    if (o.flag("unquoted")) throw UsageError("--unquoted is for --cmd templates");
    if (!depends_params.empty())
      throw UsageError("--depends-param names a {placeholder} of --cmd: give --cmd");
    plan.inputs.push_back(Field{"command", FieldType::string, "", ""});
    plan.inputs_name = "exec";
  } else {
    tmpl = std::make_shared<const CommandTemplate>(cmd,
                                                   o.flag("unquoted") ? Mode::raw
                                                   : shell            ? Mode::shell
                                                                      : Mode::words,
                                                   /*constant_ok=*/true);
    for (const auto& name : tmpl->names())
      plan.inputs.push_back(Field{name, FieldType::string, "", ""});
    plan.inputs_name = "exec --cmd";
    plan.keep_inputs = true;  // each placeholder's value a column, as is a CSV file's every column
  }
  const std::size_t cmd_inputs = plan.inputs.size();
  auto keyed = std::make_shared<const Keyed>(o, plan.inputs, results);
  if (!tmpl && plan.inputs.size() > cmd_inputs)
    throw UsageError("--workdir and --env take --cmd's placeholders: give --cmd");
  if (tmpl && plan.inputs.empty()) {
    throw UsageError("--cmd '" + cmd +
                     "' has no {placeholder}, nor have --workdir or --env: every task would be "
                     "the same");
  }
  plan.keyed = keyed->fields;
  plan.results = keyed->json_fields;
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
  std::vector<std::string> input_names;
  for (const auto& f : plan.inputs) input_names.push_back(f.name);
  auto names = std::make_shared<OutputNames>(output.name, input_names, output_dir);
  plan.map = [tmpl, shell, depends, number, names, keyed](const std::vector<Value>& in,
                                                          std::vector<Value>& row) {
    row.clear();
    if (tmpl)
      row.emplace_back(std::in_place_type<std::string>, tmpl->fill(in, ++*number));
    else
      row.push_back(in.at(0));
    row.emplace_back(std::in_place_type<bool>, shell);
    row.emplace_back(std::in_place_type<std::string>, depends->of(in));
    keyed->values(in, row);
    names->check(in, std::get<std::string>(row[0]), keyed->identity(row));
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

// What a bound exec runs with besides a task's params.
struct ExecOptions {
  OutputSpec output;
  double timeout = 0;       // seconds, 0: none
  std::vector<Field> json;  // --json-result's fields
  bool workdir = false;     // tasks have a workdir param (--workdir)
  bool env = false;         // and an env param (--env)
};

TaskFn exec_fn(const ExecOptions& x) {
  return [x](const Params& p) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string& command = p.text("command");
    Launch launch;
    std::vector<Value> values;
    if (x.workdir) launch.workdir = p.text("workdir");
    if (x.env) {
      std::istringstream lines(p.text("env"));
      for (std::string line; std::getline(lines, line);) launch.env.push_back(line);
    }
    OutputFiles files(x.output, p,
                      task_identity(command, x.workdir ? &launch.workdir : nullptr,
                                    x.env ? &p.text("env") : nullptr));
    const Outcome o = run_command(command, p.flag("shell"), launch, files, x.timeout);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    values = {std::int64_t{o.exit_code}, std::int64_t{o.signal}, secs, o.out, o.err};
    auto failed = [&](const std::string& why) {
      for (const Field& f : x.json)
        values.push_back(f.type == FieldType::float64   ? Value(std::nan(""))
                         : f.type == FieldType::int64   ? Value(std::int64_t{0})
                         : f.type == FieldType::boolean ? Value(false)
                                                        : Value(std::string()));
      return TaskFailed(why, std::move(values));
    };
    const std::string err = o.err.empty() ? "" : "; stderr: " + last_lines(o.err);
    if (o.timed_out) {
      char limit[32];
      std::snprintf(limit, sizeof limit, "%g", x.timeout);
      throw failed(std::string("timed out after ") + limit + " s (--task-timeout)" + err);
    }
    if (o.signal != 0 && stopped_by_run(o.signal)) {
      throw InterruptedError("cut short by the run's stop (signal " + std::to_string(o.signal) +
                             ")");
    }
    if (o.signal != 0) throw failed("killed by signal " + std::to_string(o.signal) + err);
    if (o.exit_code != 0) throw failed("exit code " + std::to_string(o.exit_code) + err);
    if (!x.json.empty()) {
      std::vector<Value> json;
      try {
        json = json_result_values(x.json, o.last_line);
      } catch (const std::runtime_error& e) {
        throw failed(e.what());
      }
      values.insert(values.end(), json.begin(), json.end());
    }
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
      exec_fn({})};
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
      {"workdir", FieldType::string, "",
       "DIR: run each command in DIR, a template of --cmd's placeholders (e.g. runs/{sample}); "
       "part of the key"},
      {"env", FieldType::string, "*",
       "NAME=VALUE: set NAME in each command's environment, VALUE a template of --cmd's "
       "placeholders (repeatable); part of the key"},
      {"json_result", FieldType::string, "",
       "NAME[:TYPE],...: result columns from the last line of each command's stdout, a JSON "
       "object (TYPE float, int, bool or str; default float); part of the key"},
      {"task_timeout", FieldType::float64, "s",
       "SECONDS: a command still running then gets SIGTERM (SIGKILL 2 s later) and its task "
       "fails; retries apply (not part of the key)"},
      {"depends", FieldType::string, "",
       "FILE[,FILE...]: files every command's result depends on; a change of their content "
       "reruns the tasks"},
      {"depends_param", FieldType::string, "",
       "NAME[,NAME...]: --cmd placeholders whose values are files a task depends on; a change "
       "of one reruns exactly the tasks that name it"}};
  job.plan_rows = [results = job.info.results](const Params& o) {
    return plan_exec_rows(o, results);
  };
  job.bind = [](const Params& o) {
    if (!(o.number("task_timeout") >= 0) || !std::isfinite(o.number("task_timeout")))
      throw UsageError("--task-timeout must be a finite number of seconds >= 0");
    return exec_fn({output_spec(o), o.number("task_timeout"),
                    o.text("json_result").empty() ? std::vector<Field>()
                                                  : json_result_fields(o.text("json_result"), {}),
                    !o.text("workdir").empty(), !o.text("env").empty()});
  };
  return job;
}

}  // namespace mpibatch::jobs
