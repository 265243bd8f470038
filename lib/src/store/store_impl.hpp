// Store's internals, shared by the files that implement it: the key index's
// locations, the Impl every Store method works on, and its parts by file:
// store_open.cpp (loading, recovery, the sidecar's files), store_index.cpp
// (the key index and claims, reading records), store_write.cpp (appends,
// commits, segment flushes), store_merge.cpp (merging and the view).
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include <array>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/huge_pages.hpp"
#include "mpibatch/error.hpp"
#include "mpibatch/store.hpp"
#include "mpibatch/store_dispatch.hpp"
#include "store/lock_file.hpp"
#include "store/log.hpp"
#include "store/manifest.hpp"
#include "store/mem_table.hpp"
#include "store/table.hpp"
#include "store/view.hpp"

namespace mpibatch {

namespace detail {

// Merges job's definition into stored, the definition of the same name and
// version (see Store::define_job): params and results of new names are added after the
// stored ones. Returns why it cannot ("another description", ...), or "".
std::string widen(JobInfo& stored, const JobInfo& job);

// Where a key's newest record is: table, group within the table, failed bit,
// row. 8 bytes so the index stays small. A memtable has the number of the
// table it will become, and its rows are its entries; those row numbers stay
// valid after its flush through the table's Remap, so a flush never touches
// the index.
struct Loc {
  std::uint64_t bits = 0;
  static Loc make(std::uint32_t table, std::uint32_t group, bool failed, std::uint64_t row) {
    return Loc{(std::uint64_t{table} << 48) | (std::uint64_t{group} << 33) |
               (std::uint64_t{failed} << 32) | row};
  }
  std::uint32_t table() const { return static_cast<std::uint32_t>(bits >> 48); }
  std::uint32_t group() const { return static_cast<std::uint32_t>((bits >> 33) & 0x7FFF); }
  bool failed() const { return ((bits >> 32) & 1) != 0; }
  std::uint64_t row() const { return bits & 0xFFFFFFFFu; }
};

constexpr std::uint64_t kMaxRows = 0xFFFFFFFFu;
constexpr std::uint32_t kMaxTables = 0xFFFE;  // Loc has 16 bits, and memtables take numbers
// Index values that are no location (table numbers stay below them): a
// claimed key (row: the claim's id), and a key claimed and released while it
// had no record.
constexpr std::uint32_t kClaimed = 0xFFFF;
constexpr std::uint32_t kReleased = 0xFFFE;
constexpr std::uint32_t kNoTable = 0xFFFFFFFFu;

// Rows of a segment flushed by this writer, by memtable entry: entry e is
// the pos[e]-th live row, counting the segment's groups in order of jobs
// (job k from first[k], in the table's group group[k]).
struct Remap {
  static constexpr std::uint32_t kGone = 0xFFFFFFFFu;  // superseded, not written
  std::vector<std::uint32_t> pos;  // empty when entry e is row e (one job, none superseded)
  std::vector<std::uint32_t> first;
  std::vector<std::uint32_t> group;
  std::uint32_t at(std::uint32_t entry) const { return pos.empty() ? entry : pos[entry]; }
};

// A Loc made concrete: a memtable's entry, or a table's group and row.
struct Place {
  int mem = -1;  // memtable slot, or -1
  std::uint32_t table = 0;
  std::uint32_t group = 0;
  std::uint64_t row = 0;
};
constexpr std::size_t kFetchChunk = 8192;
// Tables a store may have before finished runs merge some (opening reads each).
constexpr std::size_t kCalmTables = 24;
constexpr std::size_t kReserveMax = std::size_t{1} << 22;
// Index slots are random cache misses: batch loops prefetch this far ahead.
constexpr std::size_t kPrefetch = 8;

}  // namespace detail

namespace fs = std::filesystem;
using detail::kCalmTables;
using detail::kClaimed;
using detail::kFetchChunk;
using detail::kMaxRows;
using detail::kMaxTables;
using detail::kNoTable;
using detail::kPrefetch;
using detail::kReleased;
using detail::kReserveMax;
using detail::Loc;
using detail::Manifest;
using detail::Place;
using detail::Remap;
using detail::TableReader;
using dispatch::Claim;

struct Store::Impl {
  fs::path path;
  fs::path dir;      // the sidecar: through side's anchor once it is open
  detail::Dir side;  // the sidecar, opened once
  StoreOptions opt;
  std::vector<Problem> problems;
  detail::LockFile lock;

  std::vector<std::unique_ptr<TableReader>> tables;  // base first, then segments by seq
  std::vector<std::unique_ptr<Remap>> remaps;        // per table; null: Locs are direct
  std::int64_t base_seq = 0;
  std::string base_file;      // the base table in the sidecar; empty: the store's file (format 1)
  std::int64_t last_seq = 0;  // highest number of any table or log seen or made
  std::vector<std::int64_t> segments;               // live segments, as in the MANIFEST
  std::map<std::string, detail::FileStamp> stamps;  // by file name, as in the MANIFEST
  std::vector<detail::FileStamp> view_stamps;       // as in the MANIFEST

  // The key index in memory: the keys this writer appended or claimed (the
  // memtables', and those of the segments it flushed). Keys of the tables
  // there were at open, tables [0, probe_end), are looked up in each
  // table's own KeyIndex instead, newest first: opening reads no keys.
  absl::flat_hash_map<TaskKey, Loc, TaskKeyHash, std::equal_to<TaskKey>,
                      detail::HugePageAllocator<std::pair<const TaskKey, Loc>>>
      index;
  std::size_t probe_end = 0;
  hsize_t probe_rows = 0;  // rows of tables [0, probe_end): none, no need to look
  // Keys that tables [0, probe_end) hold more than once (their replacing keys).
  absl::flat_hash_set<TaskKey, TaskKeyHash> replaced_keys;
  mutable std::size_t hint_table = SIZE_MAX;  // where the last key looked up was
  // Look-ups that found a key in no table [0, probe_end) cost a probe of
  // each: when their probes outnumber those tables' rows, their keys are
  // loaded into the in-memory index instead (load_tables), so many new keys
  // against many tables pay for one load, not a probe per table each.
  mutable std::uint64_t table_misses = 0;
  // Unsettled claims (Store::claim), by id. A claimed key's index value is
  // a kClaimed marker; its slot is reached through the pointer here, which
  // stays valid because the index never erases (a released key keeps a
  // kReleased marker), and is found again when the index has grown.
  struct ClaimRec {
    TaskKey key;
    std::pair<const TaskKey, Loc>* slot = nullptr;
    Loc old;  // the key's location before the claim, if had_old
    bool had_old = false;
    bool live = false;
  };
  std::vector<ClaimRec> claims;
  std::vector<Claim> free_claims;
  std::size_t claims_capacity = 0;  // index.capacity() the slot pointers are for
  std::array<detail::MemTable, 2> mems;
  unsigned active = 0;  // the memtable that takes appends
  // The table number each memtable's rows carry in Locs (kNoTable: unused).
  std::array<std::uint32_t, 2> mem_table{kNoTable, kNoTable};

  // A segment being written in the background from mems[slot].
  struct Flush {
    unsigned slot = 0;
    std::int64_t seq = 0;
    std::map<JobId, std::vector<detail::MemTable::LiveRow>> live;
    std::unique_ptr<Remap> remap;  // made by the flush thread; groups filled in on finish
    detail::FileStamp stamp;       // the segment's, made by the flush thread
    std::future<void> done;
  };
  std::unique_ptr<Flush> pending;
  std::string broken;  // why this writer can no longer write, if it cannot
  std::vector<JobInfo> jobs;
  std::map<std::int64_t, RunInfo> runs;

  std::unique_ptr<detail::LogWriter> log;
  // Job ids of the current log (writer) and of the log being replayed.
  std::map<JobId, std::uint32_t> log_job_ids;
  std::vector<JobId> replay_jobs;
  std::vector<fs::path> covered_logs;                   // logs whose frames are all in mem
  std::map<std::int64_t, std::uint64_t> replayed_logs;  // of those: number -> committed length
  bool uncommitted = false;
  // Anything (records, tasks, jobs, runs) in the logs but in no table yet.
  bool unflushed = false;
  bool closed = false;
  bool index_stale = false;  // close_merging merged without updating the index

  bool writer() const { return !opt.read_only; }

  void require_records(const char* what) const {
    if (opt.metadata_only)
      throw UsageError("store " + path.string() + " is open for its metadata only: cannot " + what);
    if (index_stale)
      throw UsageError("store " + path.string() + " was closed after merging: open it again to " +
                       what);
  }

  void require_writer(const char* what) const {
    if (!writer())
      throw UsageError("store " + path.string() + " is open read-only: cannot " + what);
    if (closed) throw UsageError("store " + path.string() + " is closed: cannot " + what);
    if (!broken.empty())
      throw StoreError("store " + path.string() + ": cannot " + what + ": " + broken);
  }

  detail::MemTable& mem() { return mems[active]; }

  // ------------------------------------------------------------ loading

  void add_job(const JobInfo& job);

  void apply_frame(std::string_view payload, std::uint64_t format, const fs::path& file);

  // Points the index at row of the active memtable.
  void index_mem(const TaskKey& key, bool failed, std::size_t row);

  // key's new record in the active memtable replaced its record at old: a
  // record of the active memtable is marked (and not written); one elsewhere
  // (a frozen memtable is being written) stays, and the key is listed in
  // the memtable's replacing keys.
  void replaced(const TaskKey& key, Loc old);

  // The newest record of key in tables [0, end), newest first.
  struct TableFind {
    std::uint32_t table = 0;
    detail::TableHit hit;
  };
  std::optional<TableFind> in_tables(const TaskKey& key, std::size_t end) const;
  // out[i]: the newest record of keys[i] (memory index, then tables
  // [0, probe_end)), or nullopt. Prefetches ahead: keys are cache misses.
  // Loads the tables' keys first when misses call for it (see table_misses):
  // readers too, so not const.
  void locate(std::span<const TaskKey> keys, std::span<std::optional<Loc>> out);
  // The indices (into keys) of todo that no table [0, probe_end) holds; out
  // gets the locations of the others.
  void locate_in_tables(std::span<const TaskKey> keys, std::vector<std::uint32_t>& todo,
                        std::span<std::optional<Loc>> out) const;

  // The location a reader sees for an index value: a claimed key's one
  // before the claim. nullptr: no record.
  const Loc* visible(const Loc& v) const;

  // Points the claims at their slots again after the index grew (moving them).
  void refresh_claims();

  void claim(std::span<const TaskKey> keys, std::span<Lookup> out, std::span<Claim> ids,
             bool claim_failed);

  // Throws unless ids[i] is an outstanding claim of keys[i], each once.
  void check_claims(std::span<const TaskKey> keys, std::span<const Claim> ids);

  // Points a claimed key's slot at row of the active memtable.
  void settle(Claim id, bool failed, std::size_t row);

  void release_claims();

  void insert_mem(const Record& r) { index_mem(r.key, r.status == Status::failed, mem().add(r)); }

  // Puts the keys of tables [0, probe_end) into the in-memory index (newest
  // record winning; what is there already is newer) and stops probing them.
  void load_tables();

  // Opens every table's key index; for those built in memory (tables from
  // before there was one), finds the keys whose rows replace an older
  // table's. A damaged index is a problem.
  void open_key_indexes();

  void read_metadata(const TableReader& tr);

  fs::path manifest_path() const { return dir / "MANIFEST"; }
  fs::path base_path() const { return base_file.empty() ? path : dir / base_file; }

  // The MANIFEST of the current tables, each stamped (stamps missing, of
  // tables an older MANIFEST listed, are made now).
  Manifest manifest_now();
  void save_manifest() { write_manifest(manifest_path(), manifest_now()); }
  // Opens the sidecar once, if it is there, and reaches every file in it
  // through that descriptor from then on (dir becomes its anchor), so a name
  // swapped for a link later is never followed. Throws NotAStoreError when it
  // is a symbolic link or not a folder (it could aim a writer's deletions at
  // any folder), or, for a writer, is not the user's or anyone may write it.
  void open_sidecar();
  // Why a listed table file does not match its stamp ("" when it does).
  std::string check_table(const fs::path& file) const;

  // A new name for a base table through seq: never one a view may still map.
  static std::string new_base_name(std::int64_t seq);

  // Format 1 to 2: the base table (the store's file) gets a name in the
  // sidecar by a hard link, so nothing is copied; the MANIFEST naming it is
  // the commit point, and the view then takes the store's file name.
  void migrate();

  static hsize_t rows_of(const TableReader& t);
  // Rows of tables that a newer record replaced, by (table, group), each
  // sorted; and (if frozen_dead) the frozen memtable's entries the active
  // one replaced. Found from the replacing keys, which are few.
  // Narrows w's rank and run columns where every table from first on has them narrow.
  void narrow_like(detail::TableWriter& w, std::size_t first) const;
  using DeadRows = std::map<std::pair<std::uint32_t, std::uint32_t>, std::vector<hsize_t>>;
  DeadRows dead_rows(std::vector<bool>* frozen_dead) const;
  // Calls fn with the live rows (no dead one) of group g of table t, front
  // to back, a few thousand at a time.
  void live_rows(const DeadRows& dead, std::size_t t, std::size_t g,
                 const std::function<void(const std::vector<Record>&)>& fn) const;
  // No records and no task lists: a table promote_first_segment may replace.
  static bool holds_nothing(const TableReader& t);
  // The oldest table holding a row that a newer record replaced, or
  // tables.size(). Walks the index only when rows outnumber live keys.
  std::size_t oldest_with_replaced_rows() const;

  // Where a merge of the newest tables starts, or tables.size() for none:
  // with more than kCalmTables tables, going back from the newest, a table
  // joins while its rows are at most twice those already taken (universal
  // compaction's size ratio), and four or more make a merge. A run's own
  // segments (a 2^20-entry memtable each) are so left as they are unless
  // there are many. Sizes so grow geometrically, and a record is
  // rewritten about log(records) times over the store's life. From lowest
  // on: 0 lets the base join (its rewrite), 1 keeps it out.
  std::size_t merge_start(std::size_t lowest) const;

  // Tables first.. (segments, the newest) into one new segment, live rows
  // only, in storage order. Committed by the MANIFEST; the view follows.
  // For close_merging only: the index is not updated.
  void merge_range(std::size_t first);

  // An empty base gives way to the oldest segment, which becomes the base
  // by a hard link (no copy): a first run is never rewritten. Like
  // merge_range, for close_merging only (the index is not updated).
  void promote_first_segment();

  // The store's file: virtual datasets over the tables (see view.hpp).
  // The MANIFEST lists the new view's stamp before the view is renamed into place.
  void write_view();

  std::vector<detail::ViewSource> view_sources() const;

  // Returns false when a file vanished or changed under us (a compaction
  // ran): retry. On the last attempt, what is missing is reported instead.
  bool load(bool last_attempt);

  // Writers: deletes what the MANIFEST and base no longer need: folded or
  // orphaned segments, logs a segment covers, temporaries of a crash.
  void remove_obsolete();
  // Writers: cuts each replayed log back to its committed length. A killed
  // writer's torn tail is never read, and on a full disk it is the space the
  // next attempt needs.
  void trim_logs();

  void start_log();

  // The current log's id of a job, writing its definition first if needed.
  // The job's id in the current log, its definition logged on first use
  // (and again, under the same id, when again: a widened definition).
  std::uint32_t log_job_id(const JobInfo& job, bool again = false);

  // ------------------------------------------------------------ writing

  const JobInfo& job_of(const std::string& name, std::int64_t version) const;

  void check_record(const Record& r, const JobInfo& job) const;

  std::vector<RunInfo> run_list() const;

  // Freezes the active memtable and writes it to a segment on a background
  // thread, so the caller (the master rank, in a run) never waits on HDF5.
  // The segment is committed by the MANIFEST; only then are its logs
  // deleted. Requires everything logged to be committed and no flush pending.
  void start_flush();

  // Waits for the pending flush and points the index at its segment.
  void finish_flush();

  // Everything logged so far into segments, before returning.
  void flush_now();

  void commit();

  // Checks a batch against its jobs (all or nothing) and logs it as one frame.
  // Checks a batch against its jobs (all or nothing), logs it as one frame,
  // copies the frame's record bytes into the active memtable's arena and
  // points the index at them: one encoding, no per-record allocation.
  void append_batch(std::span<const Record> records);

  // A columnar batch: checked whole, then one frame as append_batch does.
  // ids: the rows' claims, or empty.
  void append_columns(const RecordBatch& b, std::span<const Claim> ids);

  // Logs the records frame encode() writes (it pushes each record's start
  // onto offsets) and copies its record bytes into the active memtable's
  // arena; offsets end up relative to the arena, plus one past the last.
  template <class Encode>
  void log_records(std::vector<std::size_t>& offsets, Encode&& encode);

  // Row i of a logged frame: into the memtable and the index.
  void add_row(const TaskKey& key, std::uint16_t mem_job, bool failed,
               const std::vector<std::size_t>& offsets, std::size_t i);

  static std::uint32_t row_size(const std::vector<std::size_t>& offsets, std::size_t i);

  // ------------------------------------------------------------ reading

  // Records at the given locations, in the same order, with one HDF5 read
  // per (table, group) and column.
  Place place(Loc loc) const;

  // Every live record, in storage order: tables oldest first (memtables
  // last), then group and row, read in ranges front to back (key order
  // would be a scattered point read per row: rows are stored as appended).
  void each_stored(const std::function<void(const Record&)>& fn) const;

  std::vector<Record> fetch(const std::vector<Loc>& locs) const;
};

}  // namespace mpibatch
