// Immutable HDF5 tables: the store's base file and its segments share one
// layout (docs/ARCHITECTURE.md), written whole by TableWriter into a temporary
// file that is fsync'd and renamed into place, and never opened for writing again.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "hdf5/hdf5.hpp"
#include "mpibatch/store.hpp"
#include "store/key_index.hpp"
#include "store/row_columns.hpp"
#include "store/schema.hpp"

namespace mpibatch::detail {

class TableWriter {
 public:
  // Creates tmp_path (truncating). through_seq: the highest log/segment number
  // this table includes. deflate: the columns' compression level (see h5::Column).
  TableWriter(std::filesystem::path tmp_path, std::int64_t through_seq, int deflate = 0);
  ~TableWriter();
  TableWriter(const TableWriter&) = delete;
  TableWriter& operator=(const TableWriter&) = delete;

  // Rank and run columns of 16 bits (else 32): what every row's values fit.
  // Call before add_jobs; append() throws StoreError for a value that does not fit.
  void narrow(bool rank16, bool run16) {
    rank16_ = rank16;
    run16_ = run16;
  }
  // Creates the group of every job (also those with no rows).
  void add_jobs(const std::vector<JobInfo>& jobs);
  // Appends rows of one job version, in the order given, with one write per column.
  void append(const std::string& job, std::int64_t version, std::span<const Record* const> rows);
  // The same for rows as columns (reset for this job).
  void append(const std::string& job, std::int64_t version, const RowColumns& rows);
  void append_tasks(std::int64_t run, std::span<const TaskKey> keys);
  void set_runs(const std::vector<RunInfo>& runs);
  // The key index, made by the caller (KeyIndexWriter::prepare may run
  // while the columns are written), of the tagged layout when the table is
  // uncompressed; append() then adds no keys to it. Call before the first append.
  void use_index(KeyIndexWriter* index) { external_index_ = index; }
  // Keys whose rows here replace a row of an older table (see KeyIndex).
  void set_replacing(std::vector<TaskKey> keys) { replacing_ = std::move(keys); }
  // Closes the file, fsyncs it and renames it to final_path.
  void finish(const std::filesystem::path& final_path);

 private:
  struct Group;
  struct RunGroup;
  Group& group(const std::string& job, std::int64_t version);
  RunGroup& run_group(std::int64_t run);
  std::filesystem::path tmp_path_;
  h5::Handle file_;
  int fd_ = -1;  // file_'s descriptor, for early writeback (-1: none)
  std::map<std::string, std::unique_ptr<Group>> groups_;
  std::map<std::int64_t, std::unique_ptr<RunGroup>> runs_;
  std::vector<RunInfo> run_infos_;
  KeyIndexWriter index_;
  KeyIndexWriter* external_index_ = nullptr;
  std::vector<TaskKey> replacing_;
  int deflate_ = 0;
  bool rank16_ = false, run16_ = false;
  bool finished_ = false;
};

class TableReader {
 public:
  // Throws NotAStoreError, StoreVersionError, Hdf5Error (naming the file);
  // StoreCorruptError for a view (a store's file whose tables are missing).
  explicit TableReader(const std::filesystem::path& path);
  ~TableReader();

  struct Group {
    JobInfo job;
    hsize_t rows = 0;
    bool has_error = true;  // false: no row failed, so the group has no error column
  };
  const std::filesystem::path& path() const { return path_; }
  std::int64_t through_seq() const { return through_seq_; }
  std::int64_t format() const { return format_; }
  const std::vector<Group>& groups() const { return groups_; }
  const std::vector<RunInfo>& runs() const { return runs_; }
  // Rows of each run's task list in this table.
  const std::map<std::int64_t, hsize_t>& task_rows() const { return task_rows_; }

  // Whole key and status columns of group g.
  void read_index(std::size_t g, std::vector<TaskKey>& keys,
                  std::vector<std::int8_t>& status) const;
  // count rows from start.
  std::vector<Record> read_range(std::size_t g, hsize_t start, hsize_t count) const;
  // The given rows, in the given order.
  std::vector<Record> read_rows(std::size_t g, const std::vector<hsize_t>& rows) const;
  // Whether group g's rank and run columns have 16 bits (a merge keeps them so).
  std::pair<bool, bool> narrow_columns(std::size_t g) const;
  // Appends this table's part of the run's task list.
  void read_tasks(std::int64_t run, std::vector<TaskKey>& keys) const;

  // The table's key index: the one in its file, mapped, or for a table
  // written before there was one, built from its key columns. Made on first
  // use; throws StoreCorruptError when the file's index is damaged.
  const KeyIndex& key_index() const;
  // Sets the replacing keys of an index built in memory (see KeyIndex).
  void set_replacing(std::vector<TaskKey> keys) const;
  // Why the file's own key index was not used (damaged), if it was not.
  const std::string& index_damage() const { return index_damage_; }
  // What is wrong with the key index, checked against every key column: empty when sound.
  std::vector<std::string> check_index() const;
  // Reads every dataset chunk by chunk: what fails (a chunk's checksum, each
  // naming its dataset and rows; at most 16). Empty when all reads back.
  std::vector<std::string> check_data() const;

 private:
  std::vector<Record> read_selected(std::size_t g, hsize_t n,
                                    const std::function<void(hid_t, hid_t, void*)>& read) const;
  std::filesystem::path path_;
  h5::Handle file_;
  std::int64_t through_seq_ = 0;
  std::int64_t format_ = 0;
  std::vector<Group> groups_;
  std::vector<RunInfo> runs_;
  std::map<std::int64_t, hsize_t> task_rows_;
  mutable std::unique_ptr<KeyIndex> index_;
  mutable std::string index_damage_;
};

}  // namespace mpibatch::detail
