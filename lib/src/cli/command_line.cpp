// The mpibatch command: verbs, their options, and exit statuses.
#include "mpibatch/command_line.hpp"

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>

#include "cli/row_codec.hpp"
#include "cli/run_spec.hpp"
#include "cli/submit.hpp"
#include "cli/task_rows.hpp"
#include "cli/values.hpp"
#include "mpi/messaging.hpp"
#include "mpibatch/csv.hpp"
#include "mpibatch/mpibatch.hpp"

namespace mpibatch {

namespace {

std::vector<CommandJob>& registry() {
  static std::vector<CommandJob> jobs;
  return jobs;
}

const CommandJob& find_command_job(const std::string& name) {
  for (const auto& j : registry())
    if (j.info.name == name) return j;
  std::string names;
  for (const auto& j : registry()) names += (names.empty() ? "" : ", ") + j.info.name;
  throw UsageError("no job named '" + name + "' (this program has: " + names +
                   "; see 'mpibatch jobs')");
}

// The engine's view of a command-line job. A task's input is its row of
// params (row_codec.hpp); its results travel and are stored as columns only.
detail::ErasedJob erase(const CommandJob& cj) {
  return detail::ErasedJob{
      cj.info, [&cj](std::string_view in, std::vector<Value>& values, std::vector<Value>& params) {
        detail::decode_row(in, params);
        values = cj.fn(Params(cj.info.params, params));
        return Bytes();
      }};
}

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string time_text(double unix_seconds) {
  if (unix_seconds <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  return buf;
}

// ---------------------------------------------------------------- run

struct RunArgs {
  std::string job;
  detail::TaskSpec tasks;
  std::string cmd;         // exec: a command template with {name} placeholders
  bool shell = false;      // exec: run commands with /bin/sh -c
  std::string output_dir;  // exec: keep every command's full output here
  std::string store, batch = "auto", progress = "auto", progress_file, time_limit;
  int retries = 0;
  bool fail_fast = false, skip_failed = false;
  double checkpoint = 2.0, grace = 30;
  int compress = 0;
};

// The rows of `run`: straight from TaskRows, or for exec, commands built
// from --cmd's template (whose {placeholders} take values like params) plus
// the shell flag. The command itself is what the key hashes.
class RunTasks {
 public:
  RunTasks(const CommandJob& job, const RunArgs& a) : shell_(a.shell) {
    if (job.tasks) {  // the job makes its tasks from its options
      if (!a.tasks.tasks_file.empty() || !a.tasks.grid.empty()) {
        throw UsageError("job " + job.info.name + " makes its own tasks: give only --param " +
                         option_names(job));
      }
      options_ = parse_options(job, a.tasks.params);
      stream_ = job.tasks(Params(job.options, options_));
      return;
    }
    const bool exec = job.info.name == "exec";
    if (!exec && (!a.cmd.empty() || a.shell || !a.output_dir.empty())) {
      throw UsageError("--cmd, --shell and --output-dir are for the exec job, not " +
                       job.info.name);
    }
    if (!a.output_dir.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(a.output_dir, ec);
      if (ec) throw UsageError("--output-dir " + a.output_dir + ": " + ec.message());
    }
    output_dir_ = a.output_dir;
    detail::TaskSpec spec = a.tasks;
    if (exec && !a.cmd.empty()) {
      cmd_ = a.cmd;
      JobInfo t{"exec --cmd", 1, "", {}, {}};
      // {name} with a name of letters, digits and _ is a placeholder; other braces
      // (a shell's { ...; }) are text.
      static const std::regex kPlaceholder(R"(\{([A-Za-z_][A-Za-z0-9_]*)\})");
      for (std::sregex_iterator it(cmd_.begin(), cmd_.end(), kPlaceholder), end; it != end; ++it) {
        const std::string name = (*it)[1].str();
        bool known = false;
        for (const auto& f : t.params) known = known || f.name == name;
        if (!known) t.params.push_back(Field{name, FieldType::string, "", ""});
      }
      if (t.params.empty())
        throw UsageError("--cmd '" + cmd_ + "' has no {placeholder}: every task would be the same");
      template_info_ = t;
      rows_ = std::make_unique<detail::TaskRows>(*template_info_, spec);
      return;
    }
    if (exec) {
      spec.params.push_back(std::string("shell=") + (a.shell ? "true" : "false"));
      spec.params.push_back("output_dir=" + a.output_dir);
    }
    rows_ = std::make_unique<detail::TaskRows>(job.info, spec);
    task_spec_ = detail::task_spec_json(job.info, spec);
  }

  // What the run records instead of a task list, if its rows come from the
  // spec alone (see run_spec.hpp); empty otherwise.
  const std::string& task_spec() const { return task_spec_; }

  // The number of tasks when known without reading them all.
  std::optional<std::uint64_t> count() const { return rows_ ? rows_->count() : std::nullopt; }

  // The job-level options of a job with its own tasks (empty otherwise).
  const std::vector<Value>& options() const { return options_; }

  static std::string option_names(const CommandJob& job) {
    std::string out;
    for (const auto& f : job.options)
      out += (out.empty() ? "" : ", ") + f.name + "=" + detail::type_name(f.type);
    return out;
  }

  static std::vector<Value> parse_options(const CommandJob& job,
                                          const std::vector<std::string>& given) {
    std::vector<std::optional<Value>> values(job.options.size());
    for (const auto& text : given) {
      const auto eq = text.find('=');
      const std::string name = text.substr(0, eq);
      std::size_t i = 0;
      while (i < job.options.size() && job.options[i].name != name) ++i;
      if (eq == std::string::npos || i == job.options.size()) {
        throw UsageError("--param " + text + ": job " + job.info.name + " takes " +
                         option_names(job));
      }
      values[i] = detail::parse_value(job.options[i], text.substr(eq + 1), "--param " + text);
    }
    std::vector<Value> out;
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (!values[i] && i < job.option_defaults.size() && !job.option_defaults[i].empty()) {
        values[i] = detail::parse_value(job.options[i], job.option_defaults[i],
                                        "default of " + job.options[i].name);
      }
      if (!values[i])
        throw UsageError("job " + job.info.name + " needs --param " + job.options[i].name + "=" +
                         detail::type_name(job.options[i].type));
      out.push_back(*values[i]);
    }
    return out;
  }

  bool next(std::vector<Value>& row) {
    if (stream_) return stream_(row);
    if (!template_info_) return rows_->next(row);
    if (!rows_->next(values_)) return false;
    std::string command = cmd_;
    for (std::size_t i = 0; i < template_info_->params.size(); ++i) {
      const std::string token = "{" + template_info_->params[i].name + "}";
      const std::string& value = std::get<std::string>(values_[i]);
      for (auto at = command.find(token); at != std::string::npos;
           at = command.find(token, at + value.size())) {
        command.replace(at, token.size(), value);
      }
    }
    row.clear();
    row.emplace_back(std::in_place_type<std::string>, std::move(command));
    row.emplace_back(std::in_place_type<bool>, shell_);
    row.emplace_back(std::in_place_type<std::string>, output_dir_);
    return true;
  }

 private:
  bool shell_;
  std::string output_dir_;
  std::vector<Value> options_;
  RowStream stream_;
  std::string cmd_;
  std::optional<JobInfo> template_info_;
  std::unique_ptr<detail::TaskRows> rows_;
  std::vector<Value> values_;
  std::string task_spec_;
};

int do_run(const RunArgs& a, int argc, char** argv) {
  Environment env(argc, argv);
  // Every rank checks the options; rank 0 also reads every task row once
  // before any work, so a bad row stops all ranks with the same message.
  std::string error;
  int status = kExitOk;
  const CommandJob* cj = nullptr;
  RunOptions o;
  std::optional<std::uint64_t> task_count;  // counted by the check pass
  try {
    cj = &find_command_job(a.job);
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
    o.skip_failed = a.skip_failed;
    o.checkpoint_seconds = a.checkpoint;
    o.grace = a.grace;
    o.compress = a.compress;
    if (!a.time_limit.empty()) {
      o.time_limit = detail::parse_duration(a.time_limit, "--time-limit");
    } else if (env.rank() == 0) {
      // Inside a Slurm job: stop before its end, even if the warning signal never comes.
      if (const double left = detail::slurm_time_left(); left > 0) {
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
    for (int i = 0; i < argc; ++i) o.command_line += (i ? " " : "") + std::string(argv[i]);
    if (env.rank() == 0) {
      RunTasks rows(*cj, a);
      o.task_spec = rows.task_spec();
      task_count = rows.count();
      if (!task_count) {
        std::vector<Value> row;
        task_count = 0;
        while (rows.next(row)) ++*task_count;
      }
    }
  } catch (const Error& e) {
    error = e.what();
    status = e.exit_status();
  }
  detail::mpi::bcast_int(env.comm(), status, 0);
  if (status != kExitOk) {
    if (env.rank() == 0 || !error.empty())
      std::fprintf(stderr, "mpibatch run: %s\n", error.c_str());
    return status;
  }

  const detail::ErasedJob job = erase(*cj);
  std::unique_ptr<RunTasks> rows;
  if (env.rank() == 0) rows = std::make_unique<RunTasks>(*cj, a);
  std::vector<Value> values;
  const detail::TaskSource source = [&](Bytes& input) {
    if (!rows || !rows->next(values)) return false;
    detail::encode_row(values, input);
    return true;
  };
  RunSummary s = detail::run_erased(env, job, source, o, task_count);
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
        stderr,
        "mpibatch run %s: %s: %llu tasks, %llu computed, %llu from the store, %llu failed -> %s\n",
        a.job.c_str(), to_string(s.state), static_cast<unsigned long long>(s.total),
        static_cast<unsigned long long>(s.computed), static_cast<unsigned long long>(s.cached),
        static_cast<unsigned long long>(s.failed), o.store.c_str());
    if (s.exit_status == kExitIncomplete) {
      std::fprintf(stderr, "mpibatch run: stopped early; run the same command again to resume\n");
    }
  }
  return s.exit_status;
}

// ---------------------------------------------------------------- status

const RunInfo& pick_run(const Store& s, std::int64_t id, std::vector<RunInfo>& runs) {
  runs = s.runs();
  if (runs.empty()) throw UsageError("store " + s.path().string() + " has no runs yet");
  if (id == 0) return runs.back();
  for (const auto& r : runs)
    if (r.id == id) return r;
  throw UsageError("store " + s.path().string() + " has no run " + std::to_string(id) +
                   " (it has 1 to " + std::to_string(runs.back().id) + ")");
}

// Seconds since the store last changed on disk (the newest file's mtime).
double seconds_since_change(const std::filesystem::path& store) {
  double newest = 0;
  auto consider = [&](const std::filesystem::path& p) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) {
      newest = std::max(newest, static_cast<double>(st.st_mtim.tv_sec) +
                                    static_cast<double>(st.st_mtim.tv_nsec) * 1e-9);
    }
  };
  consider(store);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(Store::sidecar(store), ec))
    consider(e.path());
  return newest > 0 ? now_unix() - newest : -1;
}

int do_status(const std::string& path, std::int64_t run_id, bool json) {
  // The run's counts are in its metadata: no key index, whatever the store's size.
  Store s = Store::open(path, {.read_only = true, .metadata_only = true});
  std::vector<RunInfo> runs;
  const RunInfo& run = pick_run(s, run_id, runs);
  std::uint64_t total = 0, cached = 0, computed = 0, failed = 0, pending = 0;
  std::map<int, std::uint64_t> per_rank;
  if (run.counts) {
    const RunCounts& c = *run.counts;
    auto u = [](std::int64_t v) {
      return static_cast<std::uint64_t>(std::max<std::int64_t>(v, 0));
    };
    total = u(c.total);
    cached = u(c.cached);
    computed = u(c.computed);
    failed = u(c.failed);
    pending = total - std::min(total, cached + computed + failed);
    for (std::size_t r = 0; r < c.per_rank.size(); ++r)
      if (c.per_rank[r] > 0) per_rank[static_cast<int>(r)] = u(c.per_rank[r]);
  } else {  // a run recorded before runs kept counts: read its tasks' records
    const Store full = Store::open(path, {.read_only = true});
    full.for_each_task(run.id, [&](const TaskKey&, const Record* r) {
      ++total;
      if (r == nullptr) {
        ++pending;
      } else if (r->status == Status::failed) {
        ++failed;
      } else if (r->run == run.id) {
        ++computed;
        ++per_rank[r->rank];
      } else {
        ++cached;
      }
    });
  }
  const double end = run.state == RunState::running ? now_unix() : run.end_time;
  const double elapsed = std::max(0.0, end - run.start_time);
  const double rate = elapsed > 0 ? static_cast<double>(computed) / elapsed : 0;
  const double eta =
      rate > 0 && run.state == RunState::running ? static_cast<double>(pending) / rate : -1;
  const double since = seconds_since_change(path);
  if (json) {
    nlohmann::json j{{"store", path},
                     {"run", run.id},
                     {"state", to_string(run.state)},
                     {"exit_status", run.exit_status},
                     {"start_time", run.start_time},
                     {"end_time", run.end_time},
                     {"command_line", run.command_line},
                     {"ranks", run.ranks},
                     {"hosts", run.hosts},
                     {"slurm_job_id", run.slurm_job_id},
                     {"slurm_nodelist", run.slurm_nodelist},
                     {"slurm_restart_count", run.slurm_restart_count},
                     {"total", total},
                     {"done", cached + computed + failed},
                     {"cached", cached},
                     {"computed", computed},
                     {"failed", failed},
                     {"pending", pending},
                     {"rate", rate},
                     {"eta", eta < 0 ? nlohmann::json() : nlohmann::json(eta)},
                     {"seconds_since_last_commit", since},
                     {"runs", runs.size()}};
    nlohmann::json ranks = nlohmann::json::object();
    for (const auto& [r, n] : per_rank) ranks[std::to_string(r)] = n;
    j["per_rank"] = ranks;
    nlohmann::json chain = nlohmann::json::array();
    for (const auto& r : runs) {
      if (!r.slurm_job_id.empty()) {
        chain.push_back({{"run", r.id},
                         {"slurm_job_id", r.slurm_job_id},
                         {"nodes", r.slurm_nodelist},
                         {"restart_count", r.slurm_restart_count},
                         {"state", to_string(r.state)}});
      }
    }
    j["slurm_jobs"] = chain;
    std::printf("%s\n", j.dump().c_str());
    return kExitOk;
  }
  const double done = static_cast<double>(cached + computed + failed);
  std::printf("store    %s (%zu runs%s)\n", path.c_str(), runs.size(),
              s.problems().empty() ? "" : ", DAMAGED: run 'mpibatch verify'");
  std::printf("run      %lld: %s, started %s, %.1f s%s\n", static_cast<long long>(run.id),
              to_string(run.state), time_text(run.start_time).c_str(), elapsed,
              run.state == RunState::running
                  ? ""
                  : (", exit status " + std::to_string(run.exit_status)).c_str());
  std::printf("command  %s\n", run.command_line.c_str());
  std::string hosts;
  for (const auto& h : run.hosts) hosts += (hosts.empty() ? "" : ",") + h;
  std::printf(
      "ranks    %d on %s%s\n", run.ranks, hosts.c_str(),
      run.slurm_job_id.empty()
          ? ""
          : (", Slurm job " + run.slurm_job_id + " on " + run.slurm_nodelist +
             (run.slurm_restart_count ? ", restart " + std::to_string(run.slurm_restart_count)
                                      : ""))
                .c_str());
  std::printf(
      "tasks    %llu: %llu done (%.1f%%), %llu computed this run, %llu from the store, %llu "
      "failed, %llu pending\n",
      static_cast<unsigned long long>(total),
      static_cast<unsigned long long>(cached + computed + failed),
      total ? 100.0 * done / static_cast<double>(total) : 0.0,
      static_cast<unsigned long long>(computed), static_cast<unsigned long long>(cached),
      static_cast<unsigned long long>(failed), static_cast<unsigned long long>(pending));
  std::printf(
      "rate     %.1f tasks/s%s; last change %.0f s ago\n", rate,
      eta >= 0 ? (", ETA " + std::to_string(static_cast<long long>(eta)) + " s").c_str() : "",
      since);
  std::string pr;
  for (const auto& [r, n] : per_rank)
    pr += (pr.empty() ? "" : ", ") + std::to_string(r) + ": " + std::to_string(n);
  std::printf("per rank %s\n", pr.empty() ? "-" : pr.c_str());
  std::string chain;
  for (const auto& r : runs) {
    if (r.slurm_job_id.empty()) continue;
    chain += (chain.empty() ? "" : ", ") + r.slurm_job_id + " (run " + std::to_string(r.id) + ", " +
             to_string(r.state) + ")";
  }
  if (!chain.empty()) std::printf("slurm    %s\n", chain.c_str());
  return kExitOk;
}

// ---------------------------------------------------------------- export

class TableOut {
 public:
  TableOut(const std::string& file, const std::string& format) : csv_(format == "csv") {
    out_ = file.empty() || file == "-" ? stdout : std::fopen(file.c_str(), "w");
    if (out_ == nullptr) throw IoError("cannot write " + file + ": " + std::strerror(errno));
    owned_ = out_ != stdout;
  }
  ~TableOut() {
    if (owned_) std::fclose(out_);
  }
  void row(const std::vector<std::pair<std::string, nlohmann::json>>& cells) {
    if (!csv_) {
      nlohmann::json j = nlohmann::json::object();
      for (const auto& [k, v] : cells) j[k] = v;
      std::fprintf(out_, "%s\n", j.dump().c_str());
      return;
    }
    std::vector<std::string> fields;
    if (!header_done_) {
      for (const auto& c : cells) fields.push_back(c.first);
      line_.clear();
      append_csv_record(line_, fields);
      std::fwrite(line_.data(), 1, line_.size(), out_);
      header_done_ = true;
      fields.clear();
    }
    for (const auto& [name, v] : cells) {
      fields.push_back(v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump());
    }
    line_.clear();
    append_csv_record(line_, fields);
    std::fwrite(line_.data(), 1, line_.size(), out_);
  }

 private:
  std::FILE* out_ = nullptr;
  bool owned_ = false;
  bool csv_;
  bool header_done_ = false;
  std::string line_;
};

nlohmann::json to_json(const Value& v) {
  switch (v.index()) {
    case 0:
      return std::get<std::int64_t>(v);
    case 1:
      return std::isfinite(std::get<double>(v)) ? nlohmann::json(std::get<double>(v))
                                                : nlohmann::json();
    case 2:
      return std::get<bool>(v);
    default:
      return std::get<std::string>(v);
  }
}

int do_export(const std::string& path, std::int64_t run_id, const std::string& format,
              const std::string& file) {
  Store s = Store::open(path, {.read_only = true});
  std::vector<RunInfo> runs;
  const RunInfo& run = pick_run(s, run_id, runs);
  TableOut out(file, format);
  // Columns: the job's params and results (from the first record), then status and error.
  const JobInfo* job = nullptr;
  std::vector<std::pair<std::string, nlohmann::json>> cells;
  auto job_of = [](const std::string& name) -> const JobInfo& {
    return find_command_job(name).info;
  };
  detail::for_each_run_task(s, run, job_of, [&](const TaskKey& key, const Record* r) {
    if (r != nullptr && job == nullptr) job = s.find_job(r->job, r->job_version);
    cells.clear();
    cells.emplace_back("key", key.hex());
    if (job != nullptr) {
      for (std::size_t i = 0; i < job->params.size(); ++i) {
        cells.emplace_back(job->params[i].name,
                           r && i < r->params.size() ? to_json(r->params[i]) : nlohmann::json());
      }
      for (std::size_t i = 0; i < job->results.size(); ++i) {
        cells.emplace_back(job->results[i].name,
                           r && i < r->values.size() ? to_json(r->values[i]) : nlohmann::json());
      }
    }
    cells.emplace_back("status", r == nullptr              ? "pending"
                                 : r->status == Status::ok ? "ok"
                                                           : "failed");
    cells.emplace_back("error", r ? r->error : "");
    out.row(cells);
  });
  return kExitOk;
}

int do_failed(const std::string& path) {
  Store s = Store::open(path, {.read_only = true});
  std::uint64_t n = 0;
  s.for_each([&](const Record& r) {
    if (r.status != Status::failed) return;
    ++n;
    std::string params;
    if (const JobInfo* job = s.find_job(r.job, r.job_version)) {
      for (std::size_t i = 0; i < r.params.size() && i < job->params.size(); ++i) {
        params += (params.empty() ? "" : " ") + job->params[i].name + "=" +
                  detail::format_value(r.params[i]);
      }
    }
    std::printf("%s %s v%lld %s: %s\n", r.key.hex().c_str(), r.job.c_str(),
                static_cast<long long>(r.job_version), params.c_str(), r.error.c_str());
  });
  std::fprintf(stderr, "%llu failed tasks\n", static_cast<unsigned long long>(n));
  return kExitOk;
}

int do_verify(const std::string& path) {
  Store s = Store::open(path, {.read_only = true});
  std::uint64_t records = 0, tasks = 0;
  std::vector<Problem> problems = s.problems();
  for (auto& p : s.check_files()) problems.push_back(std::move(p));
  try {
    s.for_each([&](const Record&) { ++records; });
    for (const auto& run : s.runs())
      s.for_each_task(run.id, [&](const TaskKey&, const Record*) { ++tasks; });
  } catch (const Error& e) {
    problems.push_back({path, e.what()});
  }
  for (const auto& p : problems) std::printf("DAMAGED %s: %s\n", p.file.c_str(), p.what.c_str());
  std::printf("%s: %llu records, %zu runs, %llu task-list entries: %s\n", path.c_str(),
              static_cast<unsigned long long>(records), s.runs().size(),
              static_cast<unsigned long long>(tasks),
              problems.empty() ? "every checksum and index is sound" : "damaged");
  return problems.empty() ? kExitOk : kExitRuntime;
}

int do_jobs() {
  for (const auto& j : registry()) {
    std::printf("%s (version %lld): %s\n", j.info.name.c_str(),
                static_cast<long long>(j.info.version), j.info.description.c_str());
    for (const auto* fields : {&j.info.params, &j.info.results}) {
      for (const auto& f : *fields) {
        std::printf("  %-7s %-12s %-7s %s%s\n", fields == &j.info.params ? "param" : "result",
                    f.name.c_str(), detail::type_name(f.type), f.description.c_str(),
                    f.unit.empty() ? "" : (" [" + f.unit + "]").c_str());
      }
    }
  }
  return kExitOk;
}

// The options of `run`, shared with `submit` (which passes them on).
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
  sub->add_option("--cmd", ra.cmd,
                  "exec: a command template; {name} takes each task's value of name "
                  "(from --grid, --param or --tasks)");
  sub->add_flag("--shell", ra.shell, "exec: run each command with /bin/sh -c (default: no shell)");
  sub->add_option("--output-dir", ra.output_dir,
                  "exec: keep each command's full stdout and stderr in "
                  "DIR/<hash of the command>.out and .err");
  sub->add_option("--store", ra.store, "The store (default JOB.h5)");
  sub->add_option("--batch", ra.batch, "Tasks per batch: auto or a number")->capture_default_str();
  sub->add_option("--retries", ra.retries, "Extra attempts for a failing task")
      ->check(CLI::NonNegativeNumber);
  sub->add_flag("--fail-fast", ra.fail_fast, "Stop at the first task that fails for good");
  sub->add_flag("--skip-failed", ra.skip_failed,
                "Count stored failures as done instead of retrying them");
  sub->add_option("--checkpoint-every", ra.checkpoint, "Commit at least every SECONDS")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--progress", ra.progress, "auto, bar, log, json or none")
      ->check(CLI::IsMember({"auto", "bar", "log", "json", "none"}))
      ->capture_default_str();
  sub->add_option("--progress-file", ra.progress_file, "Also write JSON progress lines to FILE");
  sub->add_option("--time-limit", ra.time_limit,
                  "Stop this long after the start (90, 15m, 2h, 1:30:00)");
  sub->add_option("--grace", ra.grace, "Stop dispatching GRACE seconds before the time limit")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--compress", ra.compress,
                  "Deflate (1-9, HDF5's own: h5py reads it) the tables this run writes")
      ->check(CLI::Range(0, 9));
}

// `submit`: the same command line as `run`, less submit's own options,
// with an absolute store path; mpibatch itself by its absolute path.
int do_submit(const RunArgs& ra, detail::SubmitArgs sa, int argc, char** argv) {
  find_command_job(ra.job);
  const std::string store =
      std::filesystem::absolute(ra.store.empty() ? ra.job + ".h5" : ra.store).string();
  sa.store = store;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  sa.run_argv = {ec ? std::string(argv[0]) : self.string(), "run"};
  static const std::vector<std::string> kValued{"--nodes",     "--ntasks",   "--time",
                                                "--partition", "--account",  "--chain",
                                                "--warn",      "--launcher", "--store"};
  bool after_verb = false;
  for (int i = 1; i < argc; ++i) {
    const std::string w = argv[i];
    if (!after_verb) {
      after_verb = w == "submit";
      continue;
    }
    bool skip = w == "--dry-run";
    for (const auto& v : kValued) {
      if (w == v) {
        skip = true;
        ++i;  // and its value
      } else if (w.rfind(v + "=", 0) == 0) {
        skip = true;
      }
    }
    if (!skip) sa.run_argv.push_back(w);
  }
  sa.run_argv.push_back("--store");
  sa.run_argv.push_back(store);
  return detail::submit(sa);
}

}  // namespace

// ---------------------------------------------------------------- public

const Value& Params::at(std::string_view name) const {
  for (std::size_t i = 0; i < fields_.size(); ++i)
    if (fields_[i].name == name && i < values_.size()) return values_[i];
  throw UsageError("no parameter '" + std::string(name) + "'");
}
std::int64_t Params::integer(std::string_view name) const {
  const Value& v = at(name);
  if (v.index() != 0) throw UsageError("parameter '" + std::string(name) + "' is not an int64");
  return std::get<std::int64_t>(v);
}
double Params::number(std::string_view name) const {
  const Value& v = at(name);
  if (v.index() == 0) return static_cast<double>(std::get<std::int64_t>(v));
  if (v.index() != 1) throw UsageError("parameter '" + std::string(name) + "' is not a number");
  return std::get<double>(v);
}
bool Params::flag(std::string_view name) const {
  const Value& v = at(name);
  if (v.index() != 2) throw UsageError("parameter '" + std::string(name) + "' is not a bool");
  return std::get<bool>(v);
}
const std::string& Params::text(std::string_view name) const {
  const Value& v = at(name);
  if (v.index() != 3) throw UsageError("parameter '" + std::string(name) + "' is not a string");
  return std::get<std::string>(v);
}

void register_job(CommandJob job) {
  for (const auto& j : registry()) {
    if (j.info.name == job.info.name)
      throw UsageError("job " + job.info.name + " is registered twice");
  }
  if (!job.fn) throw UsageError("job " + job.info.name + " has no function");
  registry().push_back(std::move(job));
}

const std::vector<CommandJob>& registered_jobs() {
  return registry();
}

int run_command_line(int argc, char** argv) {
  CLI::App app{
      "mpibatch: run very large batches of independent tasks under MPI, with every result kept in "
      "a crash-safe HDF5 store that is also the cache.\nExit statuses: 0 done, 1 runtime error, "
      "2 bad usage or input, 3 stopped early (resumable), 4 tasks failed.",
      "mpibatch"};
  app.require_subcommand(1);

  RunArgs ra;
  auto* run = app.add_subcommand("run",
                                 "Run a job over tasks; rerun to resume.\nExample:\n  mpirun -n 3 "
                                 "mpibatch run pi --grid row=0..99 --param order=6 --store pi.h5");
  add_run_options(run, ra);
  detail::SubmitArgs sa;
  auto* submit =
      app.add_subcommand("submit",
                         "Write a batch script next to the store and submit it with sbatch; it "
                         "stops before the time limit "
                         "and, with --chain, resubmits itself until every task is "
                         "done.\nExample:\n  mpibatch submit pi "
                         "--grid row=0..9999 --param order=7 --ntasks 64 --time 1:00:00 --chain 5");
  add_run_options(submit, ra);
  submit->add_option("--nodes", sa.nodes, "Slurm --nodes");
  submit->add_option("--ntasks", sa.ntasks, "Slurm --ntasks (MPI ranks; rank 0 dispatches)");
  submit->add_option("--time", sa.time, "Slurm --time (e.g. 30, 1:00:00, 2-00:00:00)");
  submit->add_option("--partition", sa.partition, "Slurm --partition");
  submit->add_option("--account", sa.account, "Slurm --account");
  submit
      ->add_option("--chain", sa.chain,
                   "Resubmit up to K times while the run stops early and progresses")
      ->check(CLI::NonNegativeNumber);
  submit->add_option("--warn", sa.warn, "Ask Slurm for USR1 this many seconds before the limit")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  submit->add_option("--launcher", sa.launcher, "srun (srun --mpi=pmix) or mpirun")
      ->check(CLI::IsMember({"srun", "mpirun"}))
      ->capture_default_str();
  submit->add_flag("--dry-run", sa.dry_run, "Print the batch script; submit nothing");
  std::string store_path, format = "csv", out_file;
  std::int64_t run_id = 0;
  bool json = false;
  auto* status =
      app.add_subcommand("status",
                         "A store's latest run (or --run ID): totals, rate, ETA, ranks; "
                         "works while a run writes it.\nExample:\n  mpibatch status pi.h5 --json");
  status->add_option("store", store_path, "The store")->required();
  status->add_option("--run", run_id, "Run id (default: the latest)");
  status->add_flag("--json", json, "One JSON object");
  auto* exp = app.add_subcommand("export",
                                 "One row per task in task order: params, results, status, error.\n"
                                 "Example:\n  mpibatch export pi.h5 --format csv -o pi.csv");
  exp->add_option("store", store_path, "The store")->required();
  exp->add_option("--run", run_id, "Run id (default: the latest)");
  exp->add_option("--format", format, "csv or jsonl")
      ->check(CLI::IsMember({"csv", "jsonl"}))
      ->capture_default_str();
  exp->add_option("-o,--output", out_file, "Output file (default: standard output)");
  auto* failed = app.add_subcommand(
      "failed", "The failed tasks with their messages.\nExample:\n  mpibatch failed pi.h5");
  failed->add_option("store", store_path, "The store")->required();
  auto* verify = app.add_subcommand(
      "verify",
      "Check every checksum, index and the store's view; say what is wrong and where.\n"
      "Example:\n  mpibatch verify pi.h5");
  verify->add_option("store", store_path, "The store")->required();
  auto* compact = app.add_subcommand(
      "compact",
      "Merge every table and log of the store into one table (runs merge by size).\n"
      "Example:\n  mpibatch compact pi.h5");
  compact->add_option("store", store_path, "The store")->required();
  int compact_level = 0;
  compact
      ->add_option("--compress", compact_level,
                   "Deflate (1-9, HDF5's own: h5py reads it) the new table")
      ->check(CLI::Range(0, 9));
  std::string clear_job;
  bool clear_failed = false;
  auto* clear =
      app.add_subcommand("clear",
                         "Remove results so that their tasks run again: all of them, a job's "
                         "(--job), the failed ones (--failed), or a job's failed ones.\n"
                         "Example:\n  mpibatch clear pi.h5 --failed");
  clear->add_option("store", store_path, "The store")->required();
  clear->add_option("--job", clear_job, "Only this job's results (every version)");
  clear->add_flag("--failed", clear_failed, "Only failed results");
  app.add_subcommand(
      "jobs",
      "The jobs this program knows, with parameters and results.\nExample:\n  mpibatch jobs");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  try {
    if (run->parsed()) return do_run(ra, argc, argv);
    if (submit->parsed()) return do_submit(ra, sa, argc, argv);
    if (status->parsed()) return do_status(store_path, run_id, json);
    if (exp->parsed()) return do_export(store_path, run_id, format, out_file);
    if (failed->parsed()) return do_failed(store_path);
    if (verify->parsed()) return do_verify(store_path);
    if (clear->parsed()) {
      Store s = Store::open(store_path, {.create = false});
      const std::uint64_t n = s.erase_if([&](const Record& r) {
        return (clear_job.empty() || r.job == clear_job) &&
               (!clear_failed || r.status == Status::failed);
      });
      s.close();
      std::fprintf(stderr, "mpibatch clear: removed %llu results from %s\n",
                   static_cast<unsigned long long>(n), store_path.c_str());
      return kExitOk;
    }
    if (compact->parsed()) {
      Store s = Store::open(store_path, {.create = false, .compress = compact_level});
      s.compact();
      s.close();
      std::fprintf(stderr, "mpibatch compact: %s is one table now\n", store_path.c_str());
      return kExitOk;
    }
    return do_jobs();
  } catch (const Error& e) {
    std::fprintf(stderr, "mpibatch: %s\n", e.what());
    return e.exit_status();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpibatch: %s\n", e.what());
    return kExitRuntime;
  }
}

}  // namespace mpibatch
