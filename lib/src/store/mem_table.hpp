// What the log holds beyond the newest table: the records and task-list keys
// a segment flush writes. Records stay in their log encoding, in one arena
// (LevelDB's memtable idea): appending is a copy of bytes already encoded for
// the log, with no per-record allocation; reading decodes. A writer has two
// memtables, so that one can be written to a segment in the background while
// the other takes new appends.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mpibatch/error.hpp"
#include "mpibatch/store.hpp"
#include "store/frame_codec.hpp"
#include "store/row_columns.hpp"

namespace mpibatch::detail {

// Bytes that grow with realloc: for the large blocks a memtable reaches,
// glibc moves pages (mremap) instead of copying them, and no page is touched
// twice, which std::string's grow-and-copy does.
class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena() { std::free(data_); }

  void append(std::string_view bytes) {
    if (bytes.size() > cap_ - size_) grow(size_ + bytes.size());
    std::memcpy(data_ + size_, bytes.data(), bytes.size());
    size_ += bytes.size();
  }
  // Keeps the memory: a writer refills it segment after segment.
  void clear() { size_ = 0; }
  std::size_t size() const { return size_; }
  std::string_view view(std::uint64_t offset, std::size_t size) const {
    return {data_ + offset, size};
  }
  const char* data() const { return data_; }

 private:
  void grow(std::size_t need) {
    const std::size_t cap = std::max({need, 2 * cap_, std::size_t{1} << 16});
    void* p = std::realloc(data_, cap);
    if (p == nullptr) throw std::bad_alloc();
    data_ = static_cast<char*>(p);
    cap_ = cap;
  }
  char* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t cap_ = 0;
};

struct MemTable {
  struct Entry {
    TaskKey key;
    std::uint64_t offset = 0;  // in arena
    std::uint32_t size = 0;
    std::uint16_t job = 0;  // index in jobs
    bool failed = false;
    bool superseded = false;  // a later record of the key replaced it
  };

  Arena arena;
  std::vector<Entry> entries;
  std::vector<JobId> jobs;
  std::map<std::int64_t, std::vector<TaskKey>> tasks;  // per run, in task order
  std::size_t task_count = 0;
  // Keys of records here that replaced one outside this memtable (in a
  // table, or the memtable being flushed): the segment's KeyIndex::replacing.
  std::vector<TaskKey> replacing;
  std::size_t superseded = 0;  // entries replaced by a later one here
  // A rank or run that needs more than 16 bits: the segment's column does.
  bool wide_rank = false, wide_run = false;

  void note(std::int64_t rank, std::int64_t run) {
    wide_rank = wide_rank || rank < INT16_MIN || rank > INT16_MAX;
    wide_run = wide_run || run < INT16_MIN || run > INT16_MAX;
  }

  // Records plus task keys: what the flush threshold counts.
  std::size_t size() const { return entries.size() + task_count; }

  std::uint16_t job_index(const std::string& name, std::int64_t version) {
    for (std::size_t i = 0; i < jobs.size(); ++i)
      if (jobs[i].version == version && jobs[i].name == name) return static_cast<std::uint16_t>(i);
    if (jobs.size() >= 0xFFFF) throw StoreError("more than 65535 job versions in one segment");
    jobs.push_back({name, version});
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
    scratch_.clear();
    put_record(scratch_, r, 0);
    arena.append(scratch_);
    note(r.rank, r.run);
    return add_encoded(r.key, job_index(r.job, r.job_version), r.status == Status::failed, offset,
                       static_cast<std::uint32_t>(scratch_.size()));
  }

  Record get(std::size_t row) const {
    Record r;
    const Entry& e = entries[row];
    read(e.offset, e.size, e.job, r);
    return r;
  }

  // Decodes the record at arena[offset, offset + size) into r, reusing r's
  // buffers (no allocation once warm).
  void read(std::uint64_t offset, std::uint32_t size, std::uint16_t job, Record& r) const {
    Decoder d(arena.view(offset, size));
    get_record(d, r);
    if (r.job != jobs[job].name) r.job = jobs[job].name;
    r.job_version = jobs[job].version;
  }

  void add_tasks(std::int64_t run, std::span<const TaskKey> keys) {
    auto& v = tasks[run];
    v.insert(v.end(), keys.begin(), keys.end());
    task_count += keys.size();
  }

  // Keeps the arena's, entries' and task lists' memory: a writer refills them
  // segment after segment, and fresh pages would cost a page fault and
  // zeroing each. (A run's task list may be left empty.)
  void clear() {
    arena.clear();
    entries.clear();
    jobs.clear();
    for (auto& [run, keys] : tasks) keys.clear();
    task_count = 0;
    replacing.clear();
    superseded = 0;
    wide_rank = wide_run = false;
  }

  // A live row, with what the flush needs of it, so that the flush touches
  // entries only in one sequential pass.
  struct LiveRow {
    std::uint64_t offset = 0;
    std::uint32_t size = 0;
    std::uint32_t row = 0;
  };

  // Rows not superseded, per job version, each in the order appended: the
  // rows a segment stores, in its order. Appended order, not key order, so
  // that the flush reads the arena front to back: a walk in key order was a
  // cache miss per row and the flush's largest cost. (Lookups go through
  // the index; compaction keeps this order.)
  std::map<JobId, std::vector<LiveRow>> live() const {
    std::vector<std::vector<LiveRow>> rows(jobs.size());
    {
      std::vector<std::size_t> counts(jobs.size(), 0);
      for (const Entry& e : entries) counts[e.job] += e.superseded ? 0 : 1;
      for (std::size_t j = 0; j < jobs.size(); ++j) rows[j].reserve(counts[j]);
    }
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const Entry& e = entries[i];
      if (!e.superseded) rows[e.job].push_back({e.offset, e.size, static_cast<std::uint32_t>(i)});
    }
    std::map<JobId, std::vector<LiveRow>> groups;
    for (std::size_t j = 0; j < jobs.size(); ++j)
      if (!rows[j].empty()) groups[jobs[j]] = std::move(rows[j]);
    return groups;
  }

  // Appends the record at arena[offset, offset + size) to rows (typed for its job).
  void read_row(std::uint64_t offset, std::uint32_t size, RowColumns& rows) const {
    Decoder d(arena.view(offset, size));
    get_record_row(d, rows);
  }

 private:
  std::string scratch_;  // one replayed record's encoding
};

}  // namespace mpibatch::detail
