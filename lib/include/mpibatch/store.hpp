// The checkpoint store: every task result, and the memoization cache.
//
// A store is one path (e.g. run.h5) and its sidecar folder "<path>.d/": a
// write lock, append-only checksummed logs and immutable HDF5 tables; the
// file at the path is a view whose virtual datasets join the tables, for
// h5py (docs/ARCHITECTURE.md). No HDF5 file holding committed data is ever
// open for writing, so a killed writer cannot damage committed work.
//
// One writer and any number of readers, also while the writer runs. A Store
// object is not thread-safe: use one per thread or guard it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "mpibatch/export.hpp"
#include "mpibatch/serialization.hpp"
#include "mpibatch/task_key.hpp"

namespace mpibatch {

namespace detail {
struct StoreAccess;  // store_dispatch.hpp's functions reach the store through it
}

// The on-disk format this build writes. 2: the store's file is a view whose
// datasets join the tables in its sidecar. 3: tables also carry their key
// index (/index), a job group has an error column only when a row failed,
// and runs may record a task_spec instead of a task list. 4: a failed row's
// results are the values its task failed with (TaskFailed), not stand-ins.
// 5: an uncompressed table's key columns are contiguous and its key index
// reads them in place (no copy of the keys); duration is float32, rank and
// run int16 where every row's value fits. 6: every chunk carries HDF5's
// fletcher32 checksum, the key index and key columns XXH3 sums of each
// 64 KiB block, and the MANIFEST each table's size and digest. Older stores are read as they are
// (the first writer of a format-1 store moves it to the view by a hard link, no copy); tables
// written from then on are of this format. A newer format is refused with StoreVersionError, so
// older builds refuse what they could not read.
inline constexpr std::int64_t kStoreFormat = 6;

enum class FieldType : std::uint8_t { int64, float64, boolean, string };
// "int64", "float64", "bool", "string": the names stores and messages use.
MPIBATCH_EXPORT const char* to_string(FieldType type);

// A parameter or result field of a job; results become native HDF5 columns.
struct Field {
  std::string name;
  FieldType type = FieldType::float64;
  std::string unit;
  std::string description;
  bool operator==(const Field&) const = default;
};

// A job version: what task keys hash and what names a store's group of
// records ("jobs/<name>/v<version>").
struct JobId {
  std::string name;
  std::int64_t version = 1;
  auto operator<=>(const JobId&) const = default;
};

struct JobInfo {
  std::string name;
  std::int64_t version = 1;
  std::string description;
  std::vector<Field> params;
  std::vector<Field> results;
  bool operator==(const JobInfo&) const = default;
  JobId id() const { return {name, version}; }
};

// One value of a result field; the alternative must match the field's type
// (the alternatives are in FieldType's order).
using Value = std::variant<std::int64_t, double, bool, std::string>;

enum class Status : std::uint8_t { ok = 0, failed = 1 };

struct Record {
  TaskKey key;
  std::string job;
  std::int64_t job_version = 1;
  Status status = Status::ok;
  Bytes result;               // the result's Boost archive (empty when failed)
  std::vector<Value> values;  // one per result field (a failed task: what it failed with, or none)
  std::vector<Value> params;  // one per param field of the job (none if it has none)
  std::string error;          // the failure's message (empty when ok)
  std::int32_t rank = 0;      // MPI rank that computed it
  double start_time = 0;      // seconds since the Unix epoch
  double duration = 0;        // seconds; stored as float32 (rounded when appended)
  std::int64_t run = 0;       // id of the run that computed it
  bool operator==(const Record&) const = default;
};

// crashed: the run was still "running" when a later writer opened the store.
enum class RunState : std::uint8_t { running, finished, stopped, failed, crashed };
MPIBATCH_EXPORT const char* to_string(RunState state);

// What a run has done so far, as its writer last recorded it (update_run).
struct RunCounts {
  std::int64_t total = 0;     // tasks known: the task count when given up front, else read so far
  std::int64_t cached = 0;    // served from the store (or repeated in the stream)
  std::int64_t computed = 0;  // computed by this run, ok
  std::int64_t failed = 0;    // failed for good
  std::vector<std::int64_t> per_rank;  // computed (ok or failed) by each rank
  bool operator==(const RunCounts&) const = default;
};

struct RunInfo {
  std::int64_t id = 0;  // assigned by begin_run
  double start_time = 0;
  double end_time = 0;
  std::string command_line;
  std::int32_t ranks = 1;
  std::vector<std::string> hosts;  // host name of each rank
  std::string slurm_job_id;
  std::string slurm_nodelist;            // SLURM_JOB_NODELIST
  std::int32_t slurm_restart_count = 0;  // SLURM_RESTART_COUNT (a requeued job)
  RunState state = RunState::running;
  std::int32_t exit_status = 0;
  std::int64_t task_count = 0;  // length of the run's task list
  // Set instead of a task list (RunOptions::task_spec): how its caller lists
  // the run's tasks again. `mpibatch run` records --grid and --param runs so.
  std::string task_spec;
  std::optional<RunCounts> counts;  // absent in runs of stores made before counts were kept
  bool operator==(const RunInfo&) const = default;
};

// What lookup() says of a key. claimed: dispatch::claim() only (see store_dispatch.hpp).
enum class Lookup : std::uint8_t { missing = 0, ok = 1, failed = 2, claimed = 3 };

struct StoreOptions {
  bool read_only = false;
  // Writers only: create the store when the path does not exist.
  bool create = true;
  // Readers only: read jobs and runs, not results (only the newest table
  // and the logs are read, so opening costs what the metadata costs,
  // whatever the store's size or number of tables).
  // Only path(), problems(), jobs(), find_job() and runs() may be called.
  bool metadata_only = false;
  // Writers only: open even when committed data is damaged (see problems()).
  // Off by default so that damage is noticed before new work is added.
  bool allow_damaged = false;
  // Check every table's bytes against the digest the MANIFEST recorded
  // before reading it (what `mpibatch verify` does). Otherwise a table's
  // digest is checked only when its size or mtime differ from the MANIFEST's.
  bool check_digests = false;
  // A segment file is written when this many records (or task-list keys)
  // are in memory since the last one; bounds memory and log replay time.
  std::size_t segment_records = std::size_t{1} << 20;
  // Writers only: 1-9 compresses the columns of the tables this writer
  // writes (segments, merges, compact) with HDF5's shuffle and deflate
  // (zlib at this level), both built into HDF5, so h5py and h5dump read them
  // without plugins: smaller files for slower writes and reads. Key indexes
  // stay as they are (used in place). 0: no compression.
  int compress = 0;
};

// Damage found while opening: the file and what is wrong with it.
struct Problem {
  std::string file;
  std::string what;
};

class MPIBATCH_EXPORT Store {
 public:
  // Opens or creates the store at path.
  // Throws: NotAStoreError (path is something else), StoreVersionError,
  // StoreLockedError (another writer; names host and pid), StoreCorruptError
  // (a writer and problems() is not empty, unless allow_damaged), IoError.
  // A reader never throws for damage to one part: it records a Problem and
  // reads the rest.
  static Store open(const std::filesystem::path& path, const StoreOptions& options = {});

  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;
  // Commits what was appended (errors are printed, not thrown) and releases the lock.
  ~Store();

  const std::filesystem::path& path() const;
  bool read_only() const;
  const std::vector<Problem>& problems() const;
  // Reads the store's file, the view users open, against the tables: not a
  // view, rows that differ from the tables', or rows that read as missing
  // through it are problems naming the file (a writer writes it anew when
  // it opens). Then checks each table's key index against its key columns
  // (a damaged index is not used: lookups read the columns instead, and the
  // next merge or compaction writes a sound one). What `mpibatch verify`
  // adds to problems(); reads every key. Not for metadata_only readers.
  std::vector<Problem> check_files() const;

  // Adds a job definition, or checks it against the stored one of the same
  // name and version, which it may widen: columns are described by name (the
  // key is the task's input), so a param or result of a new name is added
  // after the stored ones (rows stored before read it as NaN, 0, false or
  // ""), and one the job lacks is left to those values in its rows. Returns
  // the stored definition: records must follow its field order. Valid until
  // the next define_job. Throws UsageError when the description or the type
  // of a field of the same name differ.
  const JobInfo& define_job(const JobInfo& job);
  std::vector<JobInfo> jobs() const;
  // nullptr when not defined. Valid until the next define_job.
  const JobInfo* find_job(const std::string& name, std::int64_t version) const;

  // Starts a run; fills in and returns its id.
  std::int64_t begin_run(RunInfo info);
  // Appends keys to the run's task list, in task order.
  void append_tasks(std::int64_t run, std::span<const TaskKey> keys);
  // Records what the run has done so far; durable at the next commit (the
  // engine calls it before each). Throws UsageError for an unknown run.
  void update_run(std::int64_t run, const RunCounts& counts);
  // Records the run's end; state must not be running.
  void end_run(std::int64_t run, RunState state, std::int32_t exit_status);
  std::vector<RunInfo> runs() const;

  // Appends records (the job must be defined and values must match its
  // result fields, else UsageError, and nothing of the batch is appended).
  // A later record for the same key replaces the earlier one. Durable only
  // after commit(). One log frame per call: pass batches, not single records.
  void append(std::span<const Record> records);
  // The same; records is left empty.
  void append(std::vector<Record>&& records);
  // When it returns, everything appended, defined or begun before it
  // survives kill -9 and power loss (fdatasync of the log).
  void commit();

  // Batch cache check: out[i] says what is stored for keys[i]. out.size()
  // must equal keys.size(). Sees appended records before they are committed.
  void lookup(std::span<const TaskKey> keys, std::span<Lookup> out) const;
  std::optional<Record> get(const TaskKey& key) const;
  // Number of distinct keys stored.
  std::size_t size() const;

  // Every record, in the order stored: oldest first (a file's rows are in the
  // order appended), which reads each file front to back.
  void for_each(const std::function<void(const Record&)>& fn) const;
  // The run's tasks in task order; record is nullptr for a task with no record.
  // A run with a task_spec kept no task list: nothing is called.
  void for_each_task(std::int64_t run,
                     const std::function<void(const TaskKey&, const Record*)>& fn) const;
  // fn(key, record or nullptr) for each key, in the order given; records are
  // read a few thousand at a time. For a caller that lists a run's tasks again.
  void for_each_key(std::span<const TaskKey> keys,
                    const std::function<void(const TaskKey&, const Record*)>& fn) const;

  // Writers: merges every table and log into one new base table (in the
  // sidecar; path() is its view) and removes the rest. Rewrites the whole
  // store: close_merging() is what runs call. Crash-safe at every step.
  // A store of one table is left as it is, unless compress is set.
  void compact();
  // Writers: removes the records for which drop is true (their tasks will be
  // computed again), by writing the store anew as compact() does; returns
  // how many were removed. Runs and task lists stay.
  std::uint64_t erase_if(const std::function<bool(const Record&)>& drop);
  // Commits and releases the lock. Idempotent. Throws what commit throws.
  void close();
  // A finished run's cleanup, then close(): merges the store's newest tables
  // while they are small next to what they follow, so that their number
  // stays small and each record is rewritten about log(records) times over
  // the store's life, whatever the number of runs; a run that added little
  // writes little. When the base joins, that is compact(). Records that a
  // newer one replaced (a retried failure) are merged away first, so the
  // view shows one row a key. Nothing is merged over damage. Closes even
  // when merging throws (Error), then rethrows; reading records afterwards
  // throws UsageError: open the store again.
  void close_merging();

  // True when path holds a store (the HDF5 file with mpibatch's format mark).
  static bool exists(const std::filesystem::path& path);
  // The sidecar folder of the store at path.
  static std::filesystem::path sidecar(const std::filesystem::path& path);

  struct MPIBATCH_HIDDEN Impl;  // internals: not part of the ABI

 private:
  friend struct detail::StoreAccess;
  explicit Store(std::unique_ptr<Impl> impl);
  std::uint64_t rewrite(const std::function<bool(const Record&)>* drop);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mpibatch
