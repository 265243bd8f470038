// The verbs that check or change a store as a whole: verify, compact, clear.
#include <unistd.h>

#include <cstdio>

#include "cli/values.hpp"
#include "cli/verbs.hpp"
#include "engine/crash_records.hpp"

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
  std::printf("%s: %s, %s, %s: %s\n", path.c_str(), plural(records, "record").c_str(),
              plural(s.runs().size(), "run").c_str(),
              plural(tasks, "task-list entry", "task-list entries").c_str(),
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

int do_clear(const std::string& path, const std::string& job, bool failed_only, bool dry_run,
             bool yes) {
  auto doomed = [&](const Record& r) {
    return (job.empty() || r.job == job) && (!failed_only || r.status == Status::failed);
  };
  const bool ask = !yes && ::isatty(STDIN_FILENO) != 0;
  if (dry_run || ask) {
    std::uint64_t count = 0;
    Store::open(path, {.read_only = true}).for_each([&](const Record& r) { count += doomed(r); });
    const std::string what = plural(count, "result") + " from " + path;
    if (dry_run || count == 0) {
      std::fprintf(stderr, "mpibatch clear: would remove %s\n", what.c_str());
      return kExitOk;
    }
    std::fprintf(stderr, "Remove %s? [y/N] ", what.c_str());
    char answer[16] = "";
    if (std::fgets(answer, sizeof answer, stdin) == nullptr ||
        (answer[0] != 'y' && answer[0] != 'Y')) {
      std::fprintf(stderr, "mpibatch clear: nothing removed\n");
      return kExitOk;
    }
  }
  Store s = Store::open(path, {.create = false});
  // Crash records go with the results cleared, and with tasks that have none
  // yet (crashed but not quarantined): a clear starts them afresh.
  const CrashCounts crashes = read_crash_records(path);
  std::unordered_set<TaskKey, TaskKeyHash> keys;
  for (const auto& entry : crashes)
    if (!s.get(entry.first)) keys.insert(entry.first);
  const std::uint64_t n = s.erase_if([&](const Record& r) {
    if (!doomed(r)) return false;
    if (crashes.count(r.key) > 0) keys.insert(r.key);
    return true;
  });
  s.close();
  forget_crash_records(path, keys);
  std::fprintf(stderr, "mpibatch clear: removed %s from %s\n", plural(n, "result").c_str(),
               path.c_str());
  return kExitOk;
}

}  // namespace mpibatch::detail
