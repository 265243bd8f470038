#include "store/schema.hpp"

#include "core/value_types.hpp"
#include "mpibatch/error.hpp"

namespace mpibatch::detail {

namespace {

void write_fields(hid_t g, const std::string& prefix, const std::vector<Field>& fields) {
  std::vector<std::string> names, types, units, descriptions;
  for (const auto& f : fields) {
    names.push_back(f.name);
    types.push_back(mpibatch::to_string(f.type));
    units.push_back(f.unit);
    descriptions.push_back(f.description);
  }
  h5::write_attr(g, prefix + "_names", names);
  h5::write_attr(g, prefix + "_types", types);
  h5::write_attr(g, prefix + "_units", units);
  h5::write_attr(g, prefix + "_descriptions", descriptions);
}

}  // namespace

std::string group_path(const JobId& job) {
  return "jobs/" + job.name + "/v" + std::to_string(job.version);
}

h5::Handle field_type(FieldType t) {
  return with_type(t, [](auto type) {
    using T = typename decltype(type)::value;
    if constexpr (std::is_same_v<T, std::int64_t>)
      return h5::Handle(h5::check_id(H5Tcopy(H5T_NATIVE_INT64), "H5Tcopy"));
    else if constexpr (std::is_same_v<T, double>)
      return h5::Handle(h5::check_id(H5Tcopy(H5T_NATIVE_DOUBLE), "H5Tcopy"));
    else if constexpr (std::is_same_v<T, bool>)
      return h5::bool_type();
    else
      return h5::utf8_string_type();
  });
}

void write_job_attrs(hid_t g, const JobInfo& j) {
  h5::write_attr(g, "name", j.name);
  h5::write_attr(g, "version", j.version);
  h5::write_attr(g, "description", j.description);
  write_fields(g, "param", j.params);
  write_fields(g, "result", j.results);
}

void write_run_attrs(hid_t g, const RunInfo& r) {
  h5::write_attr(g, "start_time", r.start_time);
  h5::write_attr(g, "end_time", r.end_time);
  h5::write_attr(g, "command_line", r.command_line);
  h5::write_attr(g, "ranks", static_cast<std::int64_t>(r.ranks));
  h5::write_attr(g, "hosts", r.hosts);
  h5::write_attr(g, "slurm_job_id", r.slurm_job_id);
  h5::write_attr(g, "slurm_nodelist", r.slurm_nodelist);
  h5::write_attr(g, "slurm_restart_count", static_cast<std::int64_t>(r.slurm_restart_count));
  h5::write_attr(g, "state", std::string(mpibatch::to_string(r.state)));
  h5::write_attr(g, "exit_status", static_cast<std::int64_t>(r.exit_status));
  h5::write_attr(g, "task_count", r.task_count);
  if (!r.task_spec.empty()) h5::write_attr(g, "task_spec", r.task_spec);
  if (r.counts) {
    h5::write_attr(g, "total", r.counts->total);
    h5::write_attr(g, "cached", r.counts->cached);
    h5::write_attr(g, "computed", r.counts->computed);
    h5::write_attr(g, "failed", r.counts->failed);
    h5::write_attr(g, "per_rank", r.counts->per_rank);
  }
}

}  // namespace mpibatch::detail
