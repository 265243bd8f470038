// `mpibatch run`: a job over the tasks its options give, into a store.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>

#include "cli/run_spec.hpp"
#include "cli/values.hpp"
#include "cli/verbs.hpp"
#include "engine/isolated_compute.hpp"
#include "mpibatch/csv.hpp"
#include "mpibatch/mpibatch.hpp"

namespace mpibatch::detail {

namespace {

std::string option_flag(const Field& f) {
  std::string name = "--" + f.name;
  for (char& c : name)
    if (c == '_') c = '-';
  return name;
}

std::string field_list(const std::vector<Field>& fields) {
  std::string out;
  for (const auto& f : fields) out += (out.empty() ? "" : ", ") + f.name + "=" + type_name(f.type);
  return out;
}

// "name=value" texts to one value per field, in field order; defaults[i]
// (when given and not empty) stands in for a missing one. Throws UsageError.
std::vector<Value> parse_options(const CommandJob& job, const std::vector<std::string>& given) {
  std::vector<std::optional<Value>> values(job.options.size());
  for (const auto& text : given) {
    const auto eq = text.find('=');
    const std::string name = text.substr(0, eq);
    std::size_t i = 0;
    while (i < job.options.size() && job.options[i].name != name) ++i;
    if (eq == std::string::npos || i == job.options.size()) {
      throw UsageError("--param " + text + ": job " + job.info.name + " takes " +
                       field_list(job.options));
    }
    values[i] = parse_value(job.options[i], text.substr(eq + 1), "--param " + text);
  }
  std::vector<Value> out;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!values[i] && i < job.option_defaults.size() && !job.option_defaults[i].empty()) {
      values[i] =
          parse_value(job.options[i], job.option_defaults[i], "default of " + job.options[i].name);
    }
    if (!values[i])
      throw UsageError("job " + job.info.name + " needs --param " + job.options[i].name + "=" +
                       type_name(job.options[i].type));
    out.push_back(*values[i]);
  }
  return out;
}

// The values of the job's run_options (unset ones 0, false or ""). Throws
// UsageError for an option given that the job does not take.
std::vector<Value> parse_run_options(const CommandJob& job,
                                     const std::map<std::string, std::string>& given) {
  for (const auto& [name, text] : given) {
    bool known = false;
    for (const auto& f : job.run_options) known = known || f.name == name;
    if (!known) {
      std::string owners;
      for (const auto& j : registered_jobs()) {
        for (const auto& f : j.run_options)
          if (f.name == name) owners += (owners.empty() ? "" : ", ") + j.info.name;
      }
      throw UsageError(
          option_flag(Field{name, FieldType::string, "", ""}) + " is an option of " + owners +
          ", not of job " + job.info.name +
          (name == "task_timeout" ? " (with --isolate it limits any job's tasks)" : ""));
    }
  }
  std::vector<Value> out;
  for (const auto& f : job.run_options) {
    const auto it = given.find(f.name);
    std::string text = it != given.end()              ? it->second
                       : f.type == FieldType::boolean ? "false"
                       : f.type == FieldType::string  ? ""
                                                      : "0";
    out.push_back(parse_value(f, text, option_flag(f)));
  }
  return out;
}

// What a run adds to its job's fields: params its plan's map writes after
// the job's own (keyed), the inputs it keeps (kept, not in the key), and
// result fields. Rank 0's plan finds them; every rank's job needs them.
struct AddedFields {
  std::vector<Field> keyed, kept, results;
  std::string name;          // RowPlan::name
  std::int64_t version = 0;  // RowPlan::version

  std::string encode() const {
    std::string out;
    for (const auto& [tag, fields] : {std::pair{'K', &keyed}, {'P', &kept}, {'R', &results}})
      for (const Field& f : *fields)
        out += std::string(1, tag) + " " + std::to_string(static_cast<int>(f.type)) + " " + f.name +
               "\n";
    if (!name.empty()) out += "N 0 " + name + "\n";  // names have no white space (Store checks)
    if (version != 0) out += "V " + std::to_string(version) + " -\n";
    return out;
  }
  static AddedFields decode(const std::string& text) {
    AddedFields a;
    std::istringstream in(text);
    char tag = 0;
    long long number = 0;
    std::string name;
    while (in >> tag >> number >> name) {
      if (tag == 'N') {
        a.name = name;
      } else if (tag == 'V') {
        a.version = number;
      } else {
        auto& fields = tag == 'K' ? a.keyed : tag == 'P' ? a.kept : a.results;
        fields.push_back(Field{name, static_cast<FieldType>(number), "", ""});
      }
    }
    return a;
  }
  // job, a copy of base, with these fields after its own.
  void apply(const CommandJob& base, CommandJob& job) const {
    if (!name.empty()) job.info.name = name;
    if (version != 0) job.info.version = version;
    job.info.params = base.info.params;
    job.info.params.insert(job.info.params.end(), keyed.begin(), keyed.end());
    job.info.params.insert(job.info.params.end(), kept.begin(), kept.end());
    job.info.results = base.info.results;
    job.info.results.insert(job.info.results.end(), results.begin(), results.end());
    job.key_params = kept.empty() ? 0 : base.info.params.size() + keyed.size();
  }
};

// The rows of `run`: from --grid, --param and --tasks (through the job's
// plan_rows, if it has one), or from the job's own tasks function.
class RunTasks {
 public:
  RunTasks(const CommandJob& job, const RunArgs& a) {
    if (job.tasks) {
      if (!a.tasks.tasks_file.empty() || !a.tasks.grid.empty()) {
        throw UsageError("job " + job.info.name + " makes its own tasks: give only --param " +
                         field_list(job.options));
      }
      options_ = parse_options(job, a.tasks.params);
      stream_ = job.tasks(Params(job.options, options_));
      return;
    }
    const std::vector<Value> run_options = parse_run_options(job, a.job_options);
    RowPlan plan;
    if (job.plan_rows) plan = job.plan_rows(Params(job.run_options, run_options));
    TaskSpec spec = a.tasks;
    spec.params.insert(spec.params.end(), plan.params.begin(), plan.params.end());
    map_ = std::move(plan.map);
    keep_inputs_ = plan.keep_inputs && map_;
    if (keep_inputs_) add_file_columns(plan.inputs, spec.tasks_file);
    inputs_info_ = job.info;
    if (!plan.inputs.empty()) {
      inputs_info_.params = std::move(plan.inputs);
      if (!plan.inputs_name.empty()) inputs_info_.name = plan.inputs_name;
    }
    added_.keyed = std::move(plan.keyed);
    added_.results = std::move(plan.results);
    added_.name = std::move(plan.name);
    added_.version = plan.version;
    if (keep_inputs_) added_.kept = inputs_info_.params;
    std::vector<Field> params = job.info.params;
    params.insert(params.end(), added_.keyed.begin(), added_.keyed.end());
    for (const Field& f : added_.kept) {
      if (std::any_of(params.begin(), params.end(),
                      [&](const Field& p) { return p.name == f.name; }))
        throw UsageError(inputs_info_.name + ": '" + f.name + "' is named like a param of job " +
                         job.info.name + " itself (" + names(params) +
                         "), under which it is stored: rename it");
    }
    // Every column of `export` has its own name: key, the params, the results, status, error.
    std::vector<std::string> taken{"key", "status", "error"};
    const std::vector<const std::vector<Field>*> all{&params, &added_.kept, &job.info.results,
                                                     &added_.results};
    for (const std::vector<Field>* fields : all) {
      for (const Field& f : *fields) {
        if (std::find(taken.begin(), taken.end(), f.name) != taken.end()) {
          throw UsageError(job.info.name + ": two columns would be named '" + f.name +
                           "' (a param, a result, or export's key, status or error): rename one");
        }
        taken.push_back(f.name);
      }
    }
    rows_ = std::make_unique<TaskRows>(inputs_info_, spec);  // keeps a reference to it
    if (!map_) {
      JobInfo as_stored = job.info;  // the name and version its keys have
      if (!added_.name.empty()) as_stored.name = added_.name;
      if (added_.version != 0) as_stored.version = added_.version;
      task_spec_ = task_spec_json(as_stored, spec);
    }
  }

  // What the run records instead of a task list, if its rows come from the
  // spec alone (see run_spec.hpp); empty otherwise.
  const std::string& task_spec() const { return task_spec_; }

  // The number of tasks when known without reading them all.
  std::optional<std::uint64_t> count() const { return rows_ ? rows_->count() : std::nullopt; }

  // The job-level options of a job with its own tasks (empty otherwise).
  const std::vector<Value>& options() const { return options_; }

  // Whether rows are made by a plan's map (RowPlan::map).
  bool mapped() const { return static_cast<bool>(map_); }

  // What the run adds to the job's fields.
  const AddedFields& added() const { return added_; }

  bool next(std::vector<Value>& row) {
    if (stream_) return stream_(row);
    if (!map_) return rows_->next(row);
    if (!rows_->next(inputs_)) return false;
    map_(inputs_, row);
    if (keep_inputs_) row.insert(row.end(), inputs_.begin(), inputs_.end());
    return true;
  }

 private:
  // A tasks file's columns (a CSV header's, the keys of JSON lines) that no
  // input names become string inputs.
  static void add_file_columns(std::vector<Field>& inputs, const std::string& file) {
    std::vector<std::string> header;
    if (file.ends_with(".csv")) {
      CsvReader reader(file);
      if (!reader.next(header)) return;  // TaskRows names the empty file
    } else if (file.ends_with(".jsonl") || file.ends_with(".ndjson") || file.ends_with(".json")) {
      std::ifstream in(file);  // TaskRows names a file it cannot open, or a bad line
      for (std::string line; std::getline(in, line);) {
        const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (!j.is_object()) continue;
        for (const auto& [key, value] : j.items())
          if (std::find(header.begin(), header.end(), key) == header.end()) header.push_back(key);
      }
    }
    static const std::regex kName("[A-Za-z0-9_.+-]+");
    for (const auto& name : header) {
      if (std::any_of(inputs.begin(), inputs.end(), [&](const Field& f) { return f.name == name; }))
        continue;
      if (!std::regex_match(name, kName)) {
        throw UsageError(file + ": column '" + name +
                         "' cannot name a stored param: use letters, digits and _ . + - only");
      }
      inputs.push_back(Field{name, FieldType::string, "", "a column of the tasks file"});
    }
  }
  static std::string names(const std::vector<Field>& fields) {
    std::string out;
    for (const auto& f : fields) out += (out.empty() ? "" : ", ") + f.name;
    return out;
  }

  bool keep_inputs_ = false;
  AddedFields added_;
  std::vector<Value> options_;
  RowStream stream_;
  JobInfo inputs_info_;
  std::unique_ptr<TaskRows> rows_;
  std::function<void(const std::vector<Value>&, std::vector<Value>&)> map_;
  std::vector<Value> inputs_;
  std::string task_spec_;
};

// GNU Parallel's --halt, as far as it means the same here: "soon" (stop
// dispatching, let tasks in flight finish) is what mpibatch does, so "now"
// (kill them) is refused rather than quietly done otherwise.
void parse_halt(const std::string& text, RunOptions& o) {
  std::string_view spec = text;
  auto bad = [&](const std::string& why) {
    throw UsageError("--halt '" + text + "': " + why +
                     " (use fail=N or fail=P%, optionally after soon,)");
  };
  if (spec.starts_with("now,")) bad("mpibatch lets tasks in flight finish: use soon");
  if (spec.starts_with("soon,")) spec.remove_prefix(5);
  if (!spec.starts_with("fail=")) bad("only failures can halt a run");
  spec.remove_prefix(5);
  const bool percent = spec.ends_with('%');
  if (percent) spec.remove_suffix(1);
  double v = 0;
  const auto [p, ec] = std::from_chars(spec.data(), spec.data() + spec.size(), v);
  if (ec != std::errc() || p != spec.data() + spec.size() || spec.empty()) bad("not a number");
  if (percent) {
    if (!(v > 0 && v <= 100)) bad("a percentage from above 0 to 100");
    o.max_failure_rate = v / 100;
  } else {
    if (!(v >= 1 && v == std::floor(v))) bad("a whole number of failures, at least 1");
    o.max_failures = static_cast<std::uint64_t>(v);
  }
}

RunOptions run_options(const RunArgs& a, const Environment& env, int argc, char** argv) {
  RunOptions o;
  o.store = a.store.empty() ? a.job + ".h5" : a.store;
  if (a.batch != "auto") {
    std::size_t used = 0;
    long long n = -1;
    try {
      n = std::stoll(a.batch, &used);
    } catch (const std::exception&) {
    }
    if (n <= 0 || used != a.batch.size())
      throw UsageError("--batch '" + a.batch + "': use auto or a number > 0");
    o.batch = static_cast<std::size_t>(n);
  }
  o.retries = a.retries;
  o.fail_fast = a.fail_fast;
  if (!a.halt.empty()) parse_halt(a.halt, o);
  o.skip_failed = a.skip_failed;
  o.retry_crashed = a.retry_crashed;
  o.checkpoint_seconds = a.checkpoint;
  o.grace = a.grace;
  o.compress = a.compress;
  if (!a.time_limit.empty()) {
    o.time_limit = parse_duration(a.time_limit, "--time-limit");
  } else if (env.rank() == 0) {
    // Inside a Slurm job: stop before its end, even if the warning signal never comes.
    if (const double left = slurm_time_left(); left > 0) {
      o.time_limit = left;
      o.grace = std::min(o.grace, left / 3);
    }
  }
  static const std::map<std::string, ProgressMode> kModes{{"auto", ProgressMode::automatic},
                                                          {"bar", ProgressMode::bar},
                                                          {"log", ProgressMode::log},
                                                          {"json", ProgressMode::json},
                                                          {"none", ProgressMode::none}};
  o.progress = kModes.at(a.progress);
  o.progress_file = a.progress_file;
  // Shell-quoted, so that status shows a line to paste back.
  for (int i = 0; i < argc; ++i) o.command_line += (i ? " " : "") + shell_word(argv[i]);
  return o;
}

}  // namespace

void add_run_options(CLI::App* sub, RunArgs& ra) {
  sub->add_option("job", ra.job, "The job (see 'mpibatch jobs')")->required();
  sub->add_option("--tasks", ra.tasks.tasks_file,
                  "Tasks file: CSV with a header, JSON lines (.jsonl), or plain "
                  "text with one value per line");
  sub->add_option("--grid", ra.tasks.grid,
                  "name=v1,v2,... or name=a..b[:step]: the Cartesian product")
      ->allow_extra_args(false);
  sub->add_option("--param", ra.tasks.params, "name=value: the same value for every task")
      ->allow_extra_args(false);
  for (const auto& job : registered_jobs()) {
    for (const auto& f : job.run_options) {
      const std::string flag = option_flag(f);
      if (sub->get_option_no_throw(flag) != nullptr) continue;
      const std::string help = job.info.name + ": " + f.description;
      if (f.type == FieldType::boolean)
        sub->add_flag(flag, help);
      else if (f.unit == "*")  // repeatable: the values joined by newlines
        sub->add_option(flag, help)
            ->type_name("TEXT")
            ->multi_option_policy(CLI::MultiOptionPolicy::Join)
            ->delimiter('\n');
      else
        sub->add_option(flag, help)
            ->type_name(f.type == FieldType::string ? "TEXT"
                        : f.unit == "s"             ? "SECONDS"
                                                    : "NUMBER");
    }
  }
  sub->add_option("--store", ra.store, "The store (default JOB.h5)");
  sub->add_option("--batch", ra.batch, "Tasks per batch: auto or a number")->capture_default_str();
  sub->add_option("--retries", ra.retries, "Extra attempts for a failing task")
      ->check(CLI::NonNegativeNumber);
  sub->add_flag("--fail-fast", ra.fail_fast, "Stop at the first task that fails for good");
  sub->add_option("--halt", ra.halt,
                  "fail=N or fail=P%: stop dispatching once N tasks, or P% of those finished "
                  "(at least 100/P), failed for good in this run (exit 4)");
  sub->add_flag("--skip-failed", ra.skip_failed,
                "Count stored failures as done instead of retrying them");
  sub->add_flag("--isolate", ra.isolate,
                "Run each worker's tasks in a process of its own, restarted after a crash: a task "
                "that crashes fails alone and the run goes on");
  sub->add_flag("--retry-crashed", ra.retry_crashed,
                "Run again the tasks that crashed their worker twice (else stored as failed)");
  sub->add_option("--checkpoint-every", ra.checkpoint, "Commit at least every SECONDS")
      ->check(seconds())
      ->capture_default_str();
  sub->add_option("--progress", ra.progress, "auto, bar, log, json or none")
      ->check(CLI::IsMember({"auto", "bar", "log", "json", "none"}))
      ->capture_default_str();
  sub->add_option("--progress-file", ra.progress_file, "Also write JSON progress lines to FILE");
  sub->add_option("--time-limit", ra.time_limit,
                  "Stop this long after the start (90, 15m, 2h, 1:30:00)");
  sub->add_option("--grace", ra.grace, "Stop dispatching GRACE seconds before the time limit")
      ->check(seconds(true))
      ->capture_default_str();
  sub->add_option("--compress", ra.compress,
                  "Deflate (1-9, HDF5's own: h5py reads it) the tables this run writes")
      ->check(CLI::Range(0, 9));
}

void collect_job_options(CLI::App* sub, RunArgs& ra) {
  for (const auto& job : registered_jobs()) {
    for (const auto& f : job.run_options) {
      const CLI::Option* opt = sub->get_option_no_throw(option_flag(f));
      if (opt == nullptr || opt->count() == 0) continue;
      if (f.type == FieldType::boolean)
        ra.job_options[f.name] = opt->as<bool>() ? "true" : "false";  // --shell=false is false
      else
        ra.job_options[f.name] = opt->as<std::string>();
    }
  }
}

// With --isolate, --task-timeout of a job that has no such option of its
// own (exec has) limits each task in its compute process: taken out of the
// job's options into timeout.
RunArgs with_isolate_timeout(const RunArgs& given, double& timeout) {
  RunArgs a = given;
  const auto it = a.job_options.find("task_timeout");
  if (!a.isolate || it == a.job_options.end()) return a;
  const CommandJob* cj = nullptr;
  try {
    cj = &find_command_job(a.job);
  } catch (const Error&) {
    return a;  // said later, as without --isolate
  }
  for (const auto& f : cj->run_options)
    if (f.name == "task_timeout") return a;
  const Value v =
      parse_value(Field{"task_timeout", FieldType::float64, "s", ""}, it->second, "--task-timeout");
  timeout = std::get<double>(v);
  if (!(timeout >= 0) || !std::isfinite(timeout))
    throw UsageError("--task-timeout must be a finite number of seconds >= 0");
  a.job_options.erase(it);
  return a;
}

// A worker's compute process under --isolate (isolated_compute.hpp): the
// job built as on a worker, then batches from the worker until it ends.
int run_compute_process(const RunArgs& args) {
  double timeout = 0;
  const RunArgs a = with_isolate_timeout(args, timeout);
  const std::string hello = read_compute_hello();
  try {
    const CommandJob* cj = &find_command_job(a.job);
    CommandJob job = *cj;
    if (cj->bind) {
      const std::vector<Value> given = parse_run_options(*cj, a.job_options);
      job.fn = cj->bind(Params(cj->run_options, given));
    }
    AddedFields::decode(hello).apply(*cj, job);
    return serve_compute_process(erase(job));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpibatch: compute process: %s\n", e.what());
    return kExitRuntime;
  }
}

int do_run(const RunArgs& args, int argc, char** argv) {
  if (std::getenv(kComputeProcessEnv) != nullptr) return run_compute_process(args);
  Environment env(argc, argv);
  double isolate_timeout = 0;
  RunArgs a;
  // Every rank checks the options; rank 0 also reads every task row once
  // before any work, so a bad row stops all ranks with the same message.
  std::string error;
  int status = kExitOk;
  const CommandJob* cj = nullptr;
  CommandJob job;  // *cj, its function bound to the run options
  RunOptions o;
  std::optional<std::uint64_t> task_count;  // counted by the check pass
  std::string added;                        // AddedFields::encode() of rank 0's rows
  try {
    a = with_isolate_timeout(args, isolate_timeout);
    cj = &find_command_job(a.job);
    job = *cj;
    if (cj->bind) {
      const std::vector<Value> given = parse_run_options(*cj, a.job_options);
      job.fn = cj->bind(Params(cj->run_options, given));
    }
    o = run_options(a, env, argc, argv);
    if (env.rank() == 0) {
      RunTasks rows(*cj, a);
      added = rows.added().encode();
      o.task_spec = rows.task_spec();
      task_count = rows.count();
      if (!task_count || rows.mapped()) {  // a plan's map may refuse a row too
        std::vector<Value> row;
        task_count = 0;
        while (rows.next(row)) ++*task_count;
      }
    }
  } catch (const Error& e) {
    error = e.what();
    status = e.exit_status();
  } catch (const std::exception& e) {  // not ours: still every rank must hear of it
    error = e.what();
    status = kExitRuntime;
  }
  // Any rank's failed check stops every rank (a worker that cannot import a
  // module, say); the lowest such rank says why, once.
  status = env.max(status);
  if (status != kExitOk) {
    const int first = -env.max(error.empty() ? -env.size() : -env.rank());
    if (env.rank() == first) std::fprintf(stderr, "mpibatch run: %s\n", error.c_str());
    return status;
  }

  added = env.broadcast(added);
  AddedFields::decode(added).apply(*cj, job);
  if (a.isolate) {
    o.isolate_command.assign(argv, argv + argc);
    o.isolate_hello = added;
    o.isolate_task_timeout = isolate_timeout;
  }
  std::unique_ptr<RunTasks> rows;
  RowStream stream;
  if (env.rank() == 0) {
    rows = std::make_unique<RunTasks>(*cj, a);
    stream = [&rows](std::vector<Value>& row) { return rows->next(row); };
  }
  RunSummary s = run(env, job, stream, o, task_count);
  if (env.rank() == 0 && cj->finish && s.state == RunState::finished && s.failed == 0) {
    try {
      const Store store = Store::open(o.store, {.read_only = true});
      cj->finish(Params(cj->options, rows->options()), store, s.run_id);
    } catch (const Error& e) {
      std::fprintf(stderr, "mpibatch run %s: after the run: %s\n", a.job.c_str(), e.what());
      s.exit_status = e.exit_status();
    }
  }
  if (env.rank() == 0) {
    std::fprintf(
        stderr, "mpibatch run %s: %s: %s, %llu computed, %llu from the store, %llu failed -> %s\n",
        a.job.c_str(), to_string(s.state), plural(s.total, "task").c_str(),
        static_cast<unsigned long long>(s.computed), static_cast<unsigned long long>(s.cached),
        static_cast<unsigned long long>(s.failed), o.store.c_str());
    if (s.exit_status == kExitIncomplete) {
      std::fprintf(stderr, "mpibatch run: stopped early; run the same command again to resume\n");
    }
  }
  return s.exit_status;
}

}  // namespace mpibatch::detail
