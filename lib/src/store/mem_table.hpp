// What the log holds beyond the newest table: the records and task-list keys
// a segment flush writes. A writer has two, so that one can be written to a
// segment in the background while the other takes new appends.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "mpibatch/store.hpp"

namespace mpibatch::detail {

struct MemTable {
  using JobVersion = std::pair<std::string, std::int64_t>;

  std::deque<Record> records;    // a deque: growing never moves the records
  std::vector<bool> superseded;  // records[i] was replaced by a later record of its key
  std::map<std::int64_t, std::vector<TaskKey>> tasks;  // per run, in task order
  std::size_t task_count = 0;

  // Records plus task keys: what the flush threshold counts.
  std::size_t size() const { return records.size() + task_count; }

  void add_tasks(std::int64_t run, std::span<const TaskKey> keys) {
    auto& v = tasks[run];
    v.insert(v.end(), keys.begin(), keys.end());
    task_count += keys.size();
  }

  void clear() { *this = MemTable(); }

  // Indexes of the records not superseded, per job version, each in key
  // order: the rows a table stores, in its order.
  std::map<JobVersion, std::vector<std::size_t>> live() const {
    std::map<JobVersion, std::vector<std::pair<TaskKey, std::size_t>>> keyed;
    for (std::size_t i = 0; i < records.size(); ++i) {
      if (!superseded[i])
        keyed[{records[i].job, records[i].job_version}].emplace_back(records[i].key, i);
    }
    std::map<JobVersion, std::vector<std::size_t>> groups;
    for (auto& [job, v] : keyed) {
      std::sort(v.begin(), v.end());
      auto& out = groups[job];
      out.reserve(v.size());
      for (const auto& kv : v) out.push_back(kv.second);
    }
    return groups;
  }
};

}  // namespace mpibatch::detail
