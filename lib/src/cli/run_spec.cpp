#include "cli/run_spec.hpp"

#include <nlohmann/json.hpp>

#include "cli/row_codec.hpp"
#include "mpibatch/error.hpp"

namespace mpibatch::detail {

std::string task_spec_json(const JobInfo& job, const TaskSpec& spec) {
  if (!spec.tasks_file.empty()) return {};
  return nlohmann::json{
      {"job", job.name}, {"version", job.version}, {"grid", spec.grid}, {"params", spec.params}}
      .dump();
}

void for_each_run_task(
    const Store& store, const RunInfo& run,
    const std::function<const JobInfo&(const std::string&, std::int64_t)>& job_of,
    const std::function<void(const TaskKey&, const Record*)>& fn) {
  if (run.task_spec.empty()) {
    store.for_each_task(run.id, fn);
    return;
  }
  const std::string what = "run " + std::to_string(run.id) + " of " + store.path().string();
  TaskSpec spec;
  std::string name;
  std::int64_t version = 0;
  try {
    const auto j = nlohmann::json::parse(run.task_spec);
    name = j.at("job").get<std::string>();
    version = j.at("version").get<std::int64_t>();
    spec.grid = j.at("grid").get<std::vector<std::string>>();
    spec.params = j.at("params").get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw StoreCorruptError(what + ": its task_spec is not readable: " + e.what());
  }
  const JobInfo& job = job_of(name, version);
  if (job.version != version) {
    throw UsageError(what + " ran job " + name + " v" + std::to_string(version) +
                     "; this mpibatch has v" + std::to_string(job.version) +
                     ", so it cannot list that run's tasks again");
  }
  TaskRows rows(job, spec);
  std::vector<Value> row;
  Bytes input;
  std::vector<TaskKey> keys;
  constexpr std::size_t kChunk = 1 << 16;
  auto flush = [&] {
    store.for_each_key(keys, fn);
    keys.clear();
  };
  while (rows.next(row)) {
    encode_row(row, input);
    keys.push_back(task_key(job.name, job.version, input));
    if (keys.size() == kChunk) flush();
  }
  flush();
}

}  // namespace mpibatch::detail
