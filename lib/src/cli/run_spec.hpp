// A --grid and --param run's tasks recorded as their spec, not a key per
// task (16 bytes each): its tasks are listed again from it when read.
#pragma once

#include <functional>
#include <string>

#include "cli/task_rows.hpp"
#include "mpibatch/store.hpp"

namespace mpibatch::detail {

// The spec of a run of job whose rows come from spec alone, as JSON; empty
// when they do not (a --tasks file may change, so its runs keep task lists).
std::string task_spec_json(const JobInfo& job, const TaskSpec& spec);

// fn(key, record or nullptr) for each of the run's tasks in task order:
// from its task list, or listed again from its task_spec with job_of's job
// of that name and version (which throws for a job it does not know). Throws UsageError when the
// job's version differs from the run's, naming both.
void for_each_run_task(
    const Store& store, const RunInfo& run,
    const std::function<const JobInfo&(const std::string&, std::int64_t)>& job_of,
    const std::function<void(const TaskKey&, const Record*)>& fn);

}  // namespace mpibatch::detail
