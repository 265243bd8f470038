// The verbs of the mpibatch command, one file each (or one per family):
// command_line.cpp parses argv with CLI11 and calls one of these. Each
// returns the exit status and throws Error for the caller to print.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/submit.hpp"
#include "cli/task_rows.hpp"
#include "mpibatch/command_line.hpp"
#include "mpibatch/store.hpp"

namespace mpibatch::detail {

// The options of `run`, which `submit` shares.
struct RunArgs {
  std::string job;
  TaskSpec tasks;
  // Options only some jobs take (CommandJob::run_options), by field name:
  // the text given, "true" for a flag.
  std::map<std::string, std::string> job_options;
  std::string store, batch = "auto", progress = "auto", progress_file, time_limit;
  int retries = 0;
  bool fail_fast = false, skip_failed = false, retry_crashed = false, isolate = false;
  std::string halt;  // "[soon,]fail=N" or "[soon,]fail=P%", as GNU Parallel's --halt
  double checkpoint = 2.0, grace = 30;
  int compress = 0;
};

// The options of run and submit themselves, as field names ('-' as '_'):
// no job's run_options may take one.
inline constexpr const char* kOwnOptionNames[] = {"job",
                                                  "tasks",
                                                  "grid",
                                                  "param",
                                                  "store",
                                                  "batch",
                                                  "retries",
                                                  "fail_fast",
                                                  "halt",
                                                  "skip_failed",
                                                  "retry_crashed",
                                                  "isolate",
                                                  "checkpoint_every",
                                                  "progress",
                                                  "progress_file",
                                                  "time_limit",
                                                  "grace",
                                                  "compress",
                                                  "help",
                                                  "h",
                                                  "nodes",
                                                  "ntasks",
                                                  "time",
                                                  "partition",
                                                  "account",
                                                  "chain",
                                                  "warn",
                                                  "launcher",
                                                  "dry_run"};

// Adds run's options to sub (run or submit), including every registered
// job's run_options; collect_job_options() copies those given into args
// after parsing.
void add_run_options(CLI::App* sub, RunArgs& args);
// A number of seconds, finite and above 0 (at least 0 with zero_ok): CLI11's
// PositiveNumber takes nan and names DBL_MAX in its message.
CLI::Validator seconds(bool zero_ok = false);
void collect_job_options(CLI::App* sub, RunArgs& args);

int do_run(const RunArgs& args, int argc, char** argv);
// The job of the command's rows as the engine runs it (command_job.cpp).
ErasedJob erase(const CommandJob& job);
int do_submit(const RunArgs& args, SubmitArgs submit, int argc, char** argv);
int do_status(const std::string& store, std::int64_t run_id, bool json);
// An HTML report of a run (report_verb.cpp); output "-" is standard output.
int do_report(const std::string& store, std::int64_t run_id, const std::string& output, int top);

// A run's figures as `status` computes them: from its metadata (or, for a
// run recorded before runs kept counts, its tasks' records). `report` shows
// the same, under status --json's names.
struct RunStatus {
  std::uint64_t total = 0, cached = 0, computed = 0, failed = 0, pending = 0;
  std::map<int, std::uint64_t> per_rank;  // computed (ok or failed) by each rank
  bool writer_gone = false;               // says running, but no writer holds the lock
  double elapsed = 0;                     // wall seconds (until now while running)
  double rate = 0;                        // computed / elapsed
  double eta = -1;                        // seconds; -1 when unknown or not running
  double seconds_since_change = -1;       // since the store's newest file changed
};
RunStatus run_status(const std::string& store, const RunInfo& run);
// The object `status --json` prints.
nlohmann::json status_json(const std::string& store, const RunInfo& run,
                           const std::vector<RunInfo>& runs, const RunStatus& st);
int do_export(const std::string& store, std::int64_t run_id, const std::string& format,
              const std::string& file);
// Exits 4 when there are failed tasks (0 when none), as `run` does.
int do_failed(const std::string& store, bool json, bool full);
int do_verify(const std::string& store);
int do_compact(const std::string& store, int compress);
// On a terminal, asks first (unless yes); dry_run only says what it would remove.
int do_clear(const std::string& store, const std::string& job, bool failed_only, bool dry_run,
             bool yes);
int do_jobs();

// The registered job of that name. Throws UsageError listing the known ones.
const CommandJob& find_command_job(const std::string& name);

// Throws StoreCorruptError naming the first damaged file when opening s
// found damage: what reads results (export, failed) must not return part of
// them as if it were all.
void require_sound(const Store& s);
// The run of that id, or the latest for 0; runs receives the store's runs.
// Throws UsageError when there is none (StoreCorruptError when the store is
// damaged: its runs may be in what is).
const RunInfo& pick_run(const Store& store, std::int64_t id, std::vector<RunInfo>& runs);

double now_unix();
// Local time as "YYYY-MM-DD HH:MM:SS", "-" for 0.
std::string time_text(double unix_seconds);

}  // namespace mpibatch::detail
