// The verbs that check or change a store as a whole: verify, compact, clear.
#include <cstdio>

#include "cli/verbs.hpp"

namespace mpibatch::detail {

int do_verify(const std::string& path) {
  Store s = Store::open(path, {.read_only = true, .check_digests = true});
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

int do_compact(const std::string& path, int compress) {
  Store s = Store::open(path, {.create = false, .compress = compress});
  s.compact();
  s.close();
  std::fprintf(stderr, "mpibatch compact: %s is one table now\n", path.c_str());
  return kExitOk;
}

int do_clear(const std::string& path, const std::string& job, bool failed_only) {
  Store s = Store::open(path, {.create = false});
  const std::uint64_t n = s.erase_if([&](const Record& r) {
    return (job.empty() || r.job == job) && (!failed_only || r.status == Status::failed);
  });
  s.close();
  std::fprintf(stderr, "mpibatch clear: removed %llu results from %s\n",
               static_cast<unsigned long long>(n), path.c_str());
  return kExitOk;
}

}  // namespace mpibatch::detail
