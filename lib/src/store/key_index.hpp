// A table's key index, kept in the table's own file (/index): for each key,
// in key order, its row and failed bit, a directory of buckets by the key's
// top bits, and the keys whose rows here replaced a row of an older table.
// Contiguous datasets, so a reader maps them (mmap) and looks keys up where
// they lie: opening a store reads no keys (LevelDB's table index).
//
// Two layouts. In an uncompressed table the keys are not copied: each entry
// has a one-byte tag (8 bits of its key), and the key itself is read from
// the table's key column, contiguous and mapped too; a look-up scans a
// bucket's tags and reads one key. A compressed table's key columns cannot
// be mapped, so its index keeps the keys, sorted, beside the rows.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "hdf5/hdf5.hpp"
#include "mpibatch/task_key.hpp"
#include "store/block_sums.hpp"

namespace mpibatch::detail {

// A key's row in a table: group (TableReader::groups() order), row in it.
struct TableHit {
  std::uint32_t group = 0;
  std::uint32_t row = 0;
  bool failed = false;
};

// Rows a table may hold: row numbers have 31 bits (the 32nd is the failed bit).
constexpr std::uint64_t kMaxTableRows = 0x7FFFFFFFu;

// Collects a table's keys as they are appended, group by group; writes the
// index at the end. Not thread-safe.
class KeyIndexWriter {
 public:
  // keys_in_columns: the tagged layout, whose write() also writes every
  // group's key column (contiguous); else the keys are copied into /index
  // and the table writes its own key columns.
  explicit KeyIndexWriter(bool keys_in_columns = true) : in_columns_(keys_in_columns) {}
  bool keys_in_columns() const { return in_columns_; }
  // Room for rows in all (a hint).
  void reserve(std::size_t rows) { pending_.reserve(rows); }
  // One row: row of group (the writer's numbering), in any order.
  void add(std::uint32_t group, std::uint32_t row, const TaskKey& key, bool failed) {
    pending_.push_back({key, failed ? row | 0x80000000u : row, group});
  }
  // Counts rows over the groups (rows of each, in the writer's numbering)
  // and sorts; write() then only writes. May run on another thread than the
  // table's writer, before the table is finished.
  void prepare(const std::vector<std::uint64_t>& group_rows);
  // Rows first.. of group (the writer's numbering) get these keys and statuses.
  void add(std::uint32_t group, std::uint64_t first, std::span<const TaskKey> keys,
           std::span<const std::int8_t> status);
  // Writes file's /index (and, in the tagged layout, each group's "key"
  // dataset). groups: each group's path and rows, in the numbering add used.
  // replacing: keys whose rows here replace a row of an older table.
  void write(hid_t file, const std::vector<std::pair<std::string, std::uint64_t>>& groups,
             std::span<const TaskKey> replacing);

 private:
  struct Pending {
    TaskKey key;
    std::uint32_t row = 0;    // in its group until write(), then global; bit 31: failed
    std::uint32_t group = 0;  // the writer's numbering
  };
  void write_key_columns(hid_t file,
                         const std::vector<std::pair<std::string, std::uint64_t>>& groups,
                         std::vector<std::uint64_t>& sums) const;
  std::vector<Pending> pending_;
  bool in_columns_ = true;
  bool prepared_ = false;
  unsigned bits_ = 0;
  std::vector<std::uint32_t> buckets_;
};

// A table's index, read-only. find() is const and touches no shared state
// but the (immutable) mapping, so readers may share it.
class KeyIndex {
 public:
  ~KeyIndex();
  KeyIndex(const KeyIndex&) = delete;
  KeyIndex& operator=(const KeyIndex&) = delete;

  // The index in file's /index, mapped from path when its datasets allow it
  // (read into memory otherwise). groups: the reader's group paths and row
  // counts. nullptr: the file has no index (written before there was one).
  // Throws StoreCorruptError naming path when the index does not match the groups.
  static std::unique_ptr<KeyIndex> open(
      hid_t file, const std::filesystem::path& path,
      const std::vector<std::pair<std::string, std::uint64_t>>& groups);
  // Built in memory from every group's key and status columns (in groups'
  // order) for a table that has no index.
  static std::unique_ptr<KeyIndex> build(
      const std::filesystem::path& path,
      const std::vector<std::pair<std::vector<TaskKey>, std::vector<std::int8_t>>>& columns);

  // The key's row here. Throws StoreCorruptError when the index points out
  // of bounds or a block it reads fails its checksum (each block is checked
  // on its first read).
  std::optional<TableHit> find(const TaskKey& key) const;
  // Brings the key's bucket entry (stage 0) or its tags or keys (stage 1) toward the cache.
  void prefetch(const TaskKey& key, int stage) const;
  std::size_t size() const { return n_; }
  // What is wrong with the entries' order, buckets or tags: empty when sound.
  std::string check() const;
  // Every key, sorted.
  std::vector<TaskKey> keys() const;
  // fn(key, where) for every key, in key order.
  template <class Fn>
  void for_each(Fn&& fn) const {
    check_sums();
    std::size_t k = 0;
    for (std::size_t i = 0; i < n_; ++i) {
      const std::uint32_t stored = u32_at(rows_, i);
      const std::uint32_t row = stored & 0x7FFFFFFFu;
      if (row >= n_) throw_out_of_range(row);
      while (k + 1 < first_.size() && first_[k + 1] <= row) ++k;
      while (k > 0 && first_[k] > row) --k;
      const auto in_group = static_cast<std::uint32_t>(row - first_[k]);
      fn(tagged_ ? key_in(k, in_group) : key_at(i),
         TableHit{group_of_[k], in_group, (stored & 0x80000000u) != 0});
    }
  }
  const std::vector<TaskKey>& replacing() const { return replacing_; }
  // For an index built in memory: the replacing keys, found by the store.
  void set_replacing(std::vector<TaskKey> keys) { replacing_ = std::move(keys); }
  // Read from the table's file (else built from its key columns).
  bool in_file() const { return in_file_; }
  bool mapped() const { return map_ != nullptr; }
  // Reads keys from the table's key columns (an uncompressed table's layout).
  bool tagged() const { return tagged_; }
  // Checks every block sum (files with sums: format 6 on). Throws
  // StoreCorruptError naming the first damaged array and rows.
  void check_sums() const {
    for (const CheckedArray& a : checked_) a.touch_all();
  }

 private:
  KeyIndex() = default;
  void point_at_own();
  [[noreturn]] void throw_out_of_range(std::uint32_t row) const;
  std::size_t bucket(const TaskKey& key) const {
    return bits_ == 0 ? 0 : static_cast<std::size_t>(key.hi >> (64 - bits_));
  }
  std::filesystem::path path_;
  void* map_ = nullptr;
  std::size_t map_size_ = 0;
  std::vector<TaskKey> own_keys_;  // sorted; tagged: the groups' keys, in row order
  std::vector<std::uint32_t> own_rows_, own_buckets_;
  std::vector<std::uint8_t> own_tags_;
  // Where the arrays lie: mapped, so not necessarily aligned; read with memcpy.
  const char* keys_ = nullptr;
  const char* rows_ = nullptr;
  const char* tags_ = nullptr;
  const char* buckets_ = nullptr;
  std::vector<const char*> group_keys_;  // tagged: index group -> its key column
  // The arrays above with their block sums: rows, buckets, tags or keys,
  // then (tagged) the key columns.
  std::vector<CheckedArray> checked_;
  TaskKey key_at(std::size_t i) const {
    TaskKey k;
    std::memcpy(&k, keys_ + 16 * i, 16);
    return k;
  }
  TaskKey key_in(std::size_t group, std::uint32_t row) const {
    TaskKey k;
    std::memcpy(&k, group_keys_[group] + 16 * std::size_t{row}, 16);
    return k;
  }
  static std::uint32_t u32_at(const char* base, std::size_t i) {
    std::uint32_t v;
    std::memcpy(&v, base + 4 * i, 4);
    return v;
  }
  std::size_t n_ = 0;
  unsigned bits_ = 0;
  bool in_file_ = false;
  bool tagged_ = false;
  std::vector<std::uint32_t> group_of_;  // index group -> the reader's group
  std::vector<std::uint64_t> first_;     // index group -> its first global row
  std::vector<TaskKey> replacing_;
};

}  // namespace mpibatch::detail
