// Running a job over many tasks on every rank of an MPI job.
//
// run() and map() are collective: every rank calls them with the same job
// and options. Rank 0 reads the tasks (a range, read lazily and never
// materialized whole), skips those whose results are in the store, sends the
// rest in batches to the other ranks, and stores every result. With one rank
// everything runs in-process with the same store semantics; the job's
// function then runs on a thread of its own, while rank 0's thread reads the
// task range (so a time limit or a signal is seen during a long task): the
// two must not share unguarded state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <ranges>
#include <string>
#include <utility>
#include <vector>

#include "mpibatch/environment.hpp"
#include "mpibatch/error.hpp"
#include "mpibatch/export.hpp"
#include "mpibatch/job.hpp"
#include "mpibatch/store.hpp"

namespace mpibatch {

enum class ProgressMode : std::uint8_t {
  automatic,  // bar on a terminal, plain lines otherwise (Slurm output files)
  bar,        // one line redrawn in place
  log,        // timestamped lines: a start line, each 5 % or 30 s, a summary
  json,       // JSON lines (to progress_file, or standard error)
  none
};

struct RunOptions {
  std::filesystem::path store;  // default: "<job name>.h5"
  std::size_t batch = 0;        // tasks per batch; 0: automatic (docs/ARCHITECTURE.md)
  // Automatic batches aim at this much work each, and at least workers /
  // 5,000 s (so the master handles at most about 5,000 batches a second).
  // Short, so that a kill reruns little: results come back per batch.
  double batch_seconds = 0.02;
  int retries = 0;         // extra attempts for a task that throws
  bool fail_fast = false;  // stop at the first task that fails for good
  // Halts like fail_fast, counting this run's failures for good: at
  // max_failures of them (0: no limit), or once they are max_failure_rate
  // (0 to 1; 0: none) of the tasks this run finished, at least 1 / rate of them.
  std::uint64_t max_failures = 0;
  double max_failure_rate = 0;
  bool skip_failed = false;  // stored failures count as done (not retried)
  // Tasks that crashed their worker twice run again (else they are stored as
  // failed and skipped: docs/ARCHITECTURE.md, "Tasks that crash").
  bool retry_crashed = false;
  // Computing ranks run their batches in a process of their own, started as
  // isolate_command (posix_spawn; it must serve batches: the mpibatch
  // command's `run --isolate` sets it) and restarted after a crash, so a task
  // that crashes fails alone within the run. isolate_hello is sent to each
  // such process first. Empty: tasks run in the rank itself.
  std::vector<std::string> isolate_command;
  std::string isolate_hello;
  double isolate_task_timeout = 0;  // seconds a task may take there (0: no limit)
  double checkpoint_seconds = 2.0;  // commit at least this often (and when a segment is due)
  ProgressMode progress = ProgressMode::automatic;
  std::filesystem::path progress_file;  // JSON lines go here when set
  double time_limit = 0;                // seconds from the start; 0: none
  double grace = 30;                    // stop dispatching this long before the time limit;
                                        // also the longest wait for tasks in flight when stopping
  bool compact =
      true;  // merge the store's newer tables when the run finishes (Store::close_merging)
  std::string command_line;  // recorded in the run's metadata
  // When set: the run keeps no task list (16 bytes a task) and records this
  // instead (RunInfo::task_spec), from which its caller can list the tasks
  // again; for_each_task then sees none. The command sets it for --grid and
  // --param runs. Empty: the task list is kept (map() needs it).
  std::string task_spec;
  int compress = 0;  // StoreOptions::compress for the tables this run writes
};

struct RunSummary {
  std::int64_t run_id = 0;
  std::uint64_t total = 0;     // tasks read
  std::uint64_t cached = 0;    // served from the store (or repeated in the stream)
  std::uint64_t computed = 0;  // computed in this run, ok
  std::uint64_t failed = 0;    // failed for good (this run, or skipped as failed)
  RunState state = RunState::finished;
  int exit_status = kExitOk;  // 0 done, 3 stopped early (resumable), 4 tasks failed
};

// A task failed (map() only); what() carries the task's own message.
class MPIBATCH_EXPORT TaskFailedError : public Error {
 public:
  using Error::Error;
  int exit_status() const noexcept override { return kExitFailedTasks; }
};

// The run stopped before every task was done (signal or time limit).
class MPIBATCH_EXPORT IncompleteError : public Error {
 public:
  using Error::Error;
  int exit_status() const noexcept override { return kExitIncomplete; }
};

// A task cut short by the run's stop: the signal that Slurm, mpirun or the
// user sends to stop a run also reached the task's own work (a command it
// ran). Not a result: the task is not stored and runs again when the run
// resumes; the run stops, and the rest of that process's tasks do not start.
class MPIBATCH_EXPORT InterruptedError : public Error {
 public:
  using Error::Error;
  int exit_status() const noexcept override { return kExitIncomplete; }
};

// A task's failure with result values as well as a message (a command's
// exit code and output): thrown by a job whose results are columns (a
// JobInfo's results), the values, one per result field, are stored in the
// failed row's result columns. Values that do not fit the fields are
// dropped: the row then holds NaN, 0, false and "", like any failed row.
class MPIBATCH_EXPORT TaskFailed : public Error {
 public:
  TaskFailed(const std::string& message, std::vector<Value> values)
      : Error(message), values_(std::move(values)) {}
  const std::vector<Value>& values() const noexcept { return values_; }

 private:
  std::vector<Value> values_;
};

// Whether this process received a stop signal (SIGINT, SIGTERM, SIGUSR1)
// during its current run: how a task tells its work cut short by a stop
// from a failure. Any thread; async-signal-safe.
MPIBATCH_EXPORT bool stop_signalled();

namespace detail {
// Writes the next task's input bytes and returns true, or returns false at the end.
using TaskSource = std::function<bool(Bytes& input)>;
// task_count: how many tasks the source gives, when known up front (a sized
// range): progress shows the total from the start, and the store's index
// makes room once instead of growing.
MPIBATCH_EXPORT RunSummary run_erased(const Environment& env, const ErasedJob& job,
                                      const TaskSource& tasks, const RunOptions& options,
                                      std::optional<std::uint64_t> task_count = std::nullopt);
}  // namespace detail

// Runs job over tasks (read on rank 0 only; other ranks may pass an empty
// range). A sized range's size is the total that progress shows from the
// start; other ranges are counted as they are read. Returns the same summary
// on rank 0; on other ranks the summary has only the exit status. Throws
// UsageError for bad options and store errors (StoreLockedError, ...); a
// task's exception is recorded, not thrown.
template <class In, class Out, std::ranges::input_range Tasks>
RunSummary run(const Environment& env, const Job<In, Out>& job, Tasks&& tasks,
               const RunOptions& options = {}) {
  auto it = std::ranges::begin(tasks);
  auto end = std::ranges::end(tasks);
  detail::TaskSource source = [&](Bytes& out) {
    if (it == end) return false;
    out = to_bytes(static_cast<In>(*it));
    ++it;
    return true;
  };
  std::optional<std::uint64_t> count;
  if constexpr (std::ranges::sized_range<Tasks>)
    count = static_cast<std::uint64_t>(std::ranges::size(tasks));
  return detail::run_erased(env, job.erase(), source, options, count);
}

// run(), then the results in task order (on rank 0; empty elsewhere).
// Throws TaskFailedError naming the first failed task's message, or
// IncompleteError when the run stopped early: the store keeps what was done.
template <class In, class Out, std::ranges::input_range Tasks>
std::vector<Out> map(const Environment& env, const Job<In, Out>& job, Tasks&& tasks,
                     RunOptions options = {}) {
  if (options.store.empty()) options.store = job.name + ".h5";
  const RunSummary s = run(env, job, std::forward<Tasks>(tasks), options);
  std::vector<Out> out;
  if (env.rank() != 0) return out;
  if (s.state == RunState::stopped) {
    throw IncompleteError("run stopped before every task was done; run again to resume");
  }
  Store store = Store::open(options.store, {.read_only = true});
  std::string first_error;
  store.for_each_task(s.run_id, [&](const TaskKey& key, const Record* r) {
    if (r == nullptr || r->status != Status::ok) {
      if (first_error.empty()) first_error = r ? r->error : "no result for task " + key.hex();
      return;
    }
    out.push_back(from_bytes<Out>(r->result));
  });
  if (!first_error.empty()) throw TaskFailedError("task failed: " + first_error);
  return out;
}

}  // namespace mpibatch
