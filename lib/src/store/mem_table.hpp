// What the log holds beyond the newest table: the records and task-list keys
// a segment flush writes. Records stay in their log encoding, in one arena
// (LevelDB's memtable idea): appending is a copy of bytes already encoded for
// the log, with no per-record allocation; reading decodes. A writer has two
// memtables, so that one can be written to a segment in the background while
// the other takes new appends.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "mpibatch/error.hpp"
#include "mpibatch/store.hpp"
#include "store/frame_codec.hpp"

namespace mpibatch::detail {

struct MemTable {
  using JobVersion = std::pair<std::string, std::int64_t>;

  struct Entry {
    TaskKey key;
    std::uint64_t offset = 0;  // in arena
    std::uint32_t size = 0;
    std::uint16_t job = 0;  // index in jobs
    bool failed = false;
    bool superseded = false;  // a later record of the key replaced it
  };

  std::string arena;
  std::vector<Entry> entries;
  std::vector<JobVersion> jobs;
  std::map<std::int64_t, std::vector<TaskKey>> tasks;  // per run, in task order
  std::size_t task_count = 0;

  // Records plus task keys: what the flush threshold counts.
  std::size_t size() const { return entries.size() + task_count; }

  std::uint16_t job_index(const std::string& name, std::int64_t version) {
    for (std::size_t i = 0; i < jobs.size(); ++i)
      if (jobs[i].second == version && jobs[i].first == name) return static_cast<std::uint16_t>(i);
    if (jobs.size() >= 0xFFFF) throw StoreError("more than 65535 job versions in one segment");
    jobs.emplace_back(name, version);
    return static_cast<std::uint16_t>(jobs.size() - 1);
  }

  // Adds a record whose encoding is arena[offset, offset + size); returns its row.
  std::size_t add_encoded(const TaskKey& key, std::uint16_t job, bool failed, std::uint64_t offset,
                          std::uint32_t size) {
    entries.push_back(Entry{key, offset, size, job, failed, false});
    return entries.size() - 1;
  }

  // Encodes a record into the arena (log replay); returns its row.
  std::size_t add(const Record& r) {
    const std::uint64_t offset = arena.size();
    put_record(arena, r, 0);
    return add_encoded(r.key, job_index(r.job, r.job_version), r.status == Status::failed, offset,
                       static_cast<std::uint32_t>(arena.size() - offset));
  }

  Record get(std::size_t row) const {
    const Entry& e = entries[row];
    Record r;
    Decoder d(std::string_view(arena).substr(e.offset, e.size));
    get_record(d, r);
    r.job = jobs[e.job].first;
    r.job_version = jobs[e.job].second;
    return r;
  }

  void add_tasks(std::int64_t run, std::span<const TaskKey> keys) {
    auto& v = tasks[run];
    v.insert(v.end(), keys.begin(), keys.end());
    task_count += keys.size();
  }

  void clear() { *this = MemTable(); }

  // Rows not superseded, per job version, each in key order: the rows a
  // table stores, in its order.
  std::map<JobVersion, std::vector<std::size_t>> live() const {
    std::vector<std::vector<std::pair<TaskKey, std::size_t>>> keyed(jobs.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (!entries[i].superseded) keyed[entries[i].job].emplace_back(entries[i].key, i);
    }
    std::map<JobVersion, std::vector<std::size_t>> groups;
    for (std::size_t j = 0; j < jobs.size(); ++j) {
      if (keyed[j].empty()) continue;
      std::sort(keyed[j].begin(), keyed[j].end());
      auto& out = groups[jobs[j]];
      out.reserve(keyed[j].size());
      for (const auto& kv : keyed[j]) out.push_back(kv.second);
    }
    return groups;
  }
};

}  // namespace mpibatch::detail
