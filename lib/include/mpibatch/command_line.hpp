// The mpibatch command line, and the jobs it can run: each takes a row of
// typed parameters (from --grid, --param, or a --tasks file) and returns
// typed result values. The `mpibatch` command registers the built-in jobs;
// your own program registers its jobs and hands its main() over:
//
//   int main(int argc, char** argv) {
//     mpibatch::register_job({{"square", 1, "x squared", {{"x", FieldType::int64}},
//                              {{"y", FieldType::int64}}},
//                             [](const mpibatch::Params& p) {
//                               const auto x = p.integer("x");
//                               return std::vector<mpibatch::Value>{x * x};
//                             }});
//     return mpibatch::run_command_line(argc, argv);
//   }
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mpibatch/environment.hpp"
#include "mpibatch/export.hpp"
#include "mpibatch/run.hpp"
#include "mpibatch/serialization.hpp"
#include "mpibatch/store.hpp"

namespace mpibatch {

// One task's parameter values, in the job's param order. Accessors throw
// UsageError naming the parameter when it does not exist or has another type.
class MPIBATCH_EXPORT Params {
 public:
  Params(const std::vector<Field>& fields, const std::vector<Value>& values)
      : fields_(fields), values_(values) {}
  std::int64_t integer(std::string_view name) const;
  double number(std::string_view name) const;  // float64, or int64 converted
  bool flag(std::string_view name) const;
  const std::string& text(std::string_view name) const;
  const std::vector<Value>& values() const { return values_; }
  const std::vector<Field>& fields() const { return fields_; }

 private:
  const Value& at(std::string_view name) const;
  const std::vector<Field>& fields_;
  const std::vector<Value>& values_;
};

// Writes the next task's row and returns true, or returns false at the end.
using RowStream = std::function<bool(std::vector<Value>& row)>;

// How `run` makes a job's task rows from the rows that --grid, --param and
// --tasks give (see CommandJob::plan_rows).
struct RowPlan {
  // The fields the tasks give, typed and checked like a job's params;
  // empty: the job's own params. inputs_name names them in messages
  // (e.g. "exec --cmd"; default: the job's name).
  std::vector<Field> inputs;
  std::string inputs_name;
  // "name=value" pairs added to every task, as --param would.
  std::vector<std::string> params;
  // Makes a task's row (the job's params) from its inputs; null: the
  // inputs are the row. A run with a map keeps its task list (the rows
  // cannot be listed again from its spec alone).
  std::function<void(const std::vector<Value>& inputs, std::vector<Value>& row)> map;
  // Whether the inputs are stored too, as param columns after the job's own
  // that do not decide the result (see CommandJob::key_params), with the
  // columns of a --tasks CSV file that no input names (strings). With a map.
  bool keep_inputs = false;
  // Params the map writes after the job's own, part of the key (exec's
  // --workdir), and result fields the task function gives after the job's
  // own (exec's --json-result): what a run adds to the job's fields.
  std::vector<Field> keyed;
  std::vector<Field> results;
  // The job's name and version in the store (and so in its keys), when the
  // plan chooses them (python: the function's, and --job-version); empty
  // and 0: the job's own.
  std::string name;
  std::int64_t version = 0;
};

// A task's function: one value per result field (in order, of the field's
// type); it may throw to fail the task. It must be safe to call from any rank.
using TaskFn = std::function<std::vector<Value>(const Params&)>;

// A job the command line can run.
struct CommandJob {
  JobInfo info;
  TaskFn fn;
  // Optional, for jobs whose tasks come from a few options (a file to split,
  // a folder to walk) rather than --grid/--tasks: the options, given with
  // --param, and a function that makes the task rows from them (on rank 0;
  // it is called twice: to check every row, then to run). Throws UsageError.
  std::vector<Field> options;
  std::vector<std::string> option_defaults;  // per option; "" means required
  std::function<RowStream(const Params& options)> tasks;
  // Optional: runs on rank 0 after a run that finished every task, e.g. to
  // write an output file from store.for_each_task(run, ...), which gives the
  // results in task order. Throws Error.
  std::function<void(const Params& options, const Store& store, std::int64_t run)> finish;
  // Optional: options of `run` and `submit` that only this job takes, as
  // --NAME VALUE (--NAME alone for a bool; '_' in NAME written '-'; a string
  // of unit "*" repeatable, its values joined by newlines), and a
  // function of their values (unset ones are 0, false or "") that plans the
  // rows. Called on rank 0, before any work. Throws UsageError.
  std::vector<Field> run_options;
  std::function<RowPlan(const Params& run_options)> plan_rows;
  // Optional: the task function for the run_options' values, made on every
  // rank before the run (copying what it keeps), for options that change how
  // tasks run but not their results (exec's --output-dir): those stay out of
  // the rows, so out of the keys. Throws UsageError.
  std::function<TaskFn(const Params& run_options)> bind;
  // How many leading params make a task's key; those after them are stored
  // with it but do not decide its result (exec's placeholder values: a run
  // adds them to info.params, see RowPlan::keep_inputs). 0: all of them.
  std::size_t key_params = 0;
};

// Adds a job to this program's command line. Throws UsageError for a name
// already registered or an invalid definition (a run option named like one
// of run's or submit's own, or like another job's of another type).
MPIBATCH_EXPORT void register_job(CommandJob job);
MPIBATCH_EXPORT const std::vector<CommandJob>& registered_jobs();

// run() for a command-line job: rows (read on rank 0 only; other ranks may
// pass null) are each task's params, in the job's param order; task_count,
// when known, is the total progress shows from the start. Collective, with
// run()'s contract (run.hpp): the job's results are stored as columns.
MPIBATCH_EXPORT RunSummary run(const Environment& env, const CommandJob& job, const RowStream& rows,
                               const RunOptions& options = {},
                               std::optional<std::uint64_t> task_count = std::nullopt);

// The mpibatch command: parses argv, runs the verb, and returns the exit
// status (0 done, 1 runtime error, 2 bad usage or input, 3 stopped early,
// 4 tasks failed). Initializes MPI only for `run`. Never throws.
MPIBATCH_EXPORT int run_command_line(int argc, char** argv);

// run_command_line in a process another program hosts (the python job's
// ranks run in python3): program is the mpibatch command's file, which
// `run --isolate` starts for its compute processes in place of
// /proc/self/exe. Call at most once per process.
MPIBATCH_EXPORT int run_hosted_command_line(int argc, char** argv, const std::string& program);

}  // namespace mpibatch
