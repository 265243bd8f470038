// The jobs this program's command line knows, and the `jobs` verb.
#include <cstdio>

#include "cli/values.hpp"
#include "cli/verbs.hpp"

namespace mpibatch {

namespace {

std::vector<CommandJob>& registry() {
  static std::vector<CommandJob> jobs;
  return jobs;
}

}  // namespace

void register_job(CommandJob job) {
  for (const auto& j : registry()) {
    if (j.info.name == job.info.name)
      throw UsageError("job " + job.info.name + " is registered twice");
  }
  if (!job.fn) throw UsageError("job " + job.info.name + " has no function");
  if (!job.run_options.empty() && !job.plan_rows)
    throw UsageError("job " + job.info.name + " has run_options but no plan_rows");
  for (const Field& f : job.run_options) {
    for (const char* own : detail::kOwnOptionNames) {
      if (f.name == own)
        throw UsageError("job " + job.info.name + ": run option '" + f.name +
                         "' is one of run's or submit's own");
    }
    for (const auto& j : registry()) {
      for (const Field& g : j.run_options) {
        if (g.name == f.name && g.type != f.type)
          throw UsageError("job " + job.info.name + ": run option '" + f.name +
                           "' has another type in job " + j.info.name);
      }
    }
  }
  registry().push_back(std::move(job));
}

const std::vector<CommandJob>& registered_jobs() {
  return registry();
}

namespace detail {

const CommandJob& find_command_job(const std::string& name) {
  for (const auto& j : registry())
    if (j.info.name == name) return j;
  std::string names;
  for (const auto& j : registry()) names += (names.empty() ? "" : ", ") + j.info.name;
  throw UsageError("no job named '" + name + "' (this program has: " + names +
                   "; see 'mpibatch jobs')");
}

int do_jobs() {
  for (const auto& j : registry()) {
    std::printf("%s (version %lld): %s\n", j.info.name.c_str(),
                static_cast<long long>(j.info.version), j.info.description.c_str());
    for (const auto* fields : {&j.info.params, &j.info.results}) {
      for (const auto& f : *fields) {
        std::printf("  %-7s %-12s %-7s %s%s\n", fields == &j.info.params ? "param" : "result",
                    f.name.c_str(), type_name(f.type), f.description.c_str(),
                    f.unit.empty() ? "" : (" [" + f.unit + "]").c_str());
      }
    }
  }
  return kExitOk;
}

}  // namespace detail

}  // namespace mpibatch
