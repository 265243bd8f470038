// What tables and the view share: a job version's group attributes, a run's
// attributes, and the HDF5 type of a field (docs/ARCHITECTURE.md's layout).
#pragma once

#include <string>

#include "hdf5/hdf5.hpp"
#include "mpibatch/store.hpp"

namespace mpibatch::detail {

// "jobs/<name>/v<version>": where a job version's records live.
std::string group_path(const JobId& job);

// The memory and file type of a field's column: int64, float64, h5py's bool, UTF-8.
h5::Handle field_type(FieldType t);

// name, version, description and the param_/result_ names, types, units, descriptions.
void write_job_attrs(hid_t group, const JobInfo& job);

// start_time, end_time, command_line, ranks, hosts, Slurm's, state, exit_status,
// task_count, and the counts when the run has them.
void write_run_attrs(hid_t group, const RunInfo& run);

}  // namespace mpibatch::detail
