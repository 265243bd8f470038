// Store: the log + immutable tables + key index (docs/ARCHITECTURE.md).
#include "mpibatch/store.hpp"

#include <absl/container/flat_hash_map.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <future>
#include <map>
#include <regex>
#include <sstream>

#include "core/prefetch.hpp"
#include "hdf5/hdf5.hpp"
#include "mpibatch/error.hpp"
#include "store/file_util.hpp"
#include "store/frame_codec.hpp"
#include "store/lock_file.hpp"
#include "store/log.hpp"
#include "store/mem_table.hpp"
#include "store/table.hpp"
#include "store/view.hpp"

namespace mpibatch {

namespace fs = std::filesystem;
using detail::TableReader;

namespace {

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
  std::vector<std::uint32_t> pos;
  std::vector<std::uint32_t> first;
  std::vector<std::uint32_t> group;
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

std::string seq_name(std::int64_t seq, const char* ext) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%012lld%s", static_cast<long long>(seq), ext);
  return buf;
}

// Number of a sidecar file named by seq_name, or -1.
std::int64_t parse_seq(const std::string& name, std::string_view ext) {
  if (name.size() != 12 + ext.size() || !name.ends_with(ext)) return -1;
  std::int64_t v = -1;
  auto [p, ec] = std::from_chars(name.data(), name.data() + 12, v);
  return ec == std::errc() && p == name.data() + 12 ? v : -1;
}

// The sidecar's MANIFEST: the base's sequence and the live segments. It is
// replaced atomically and is the commit point of a flush: a segment it does
// not list is an orphan of a crash (its logs still exist).
struct Manifest {
  std::int64_t base = 0;
  // Format 2: the base table's file in the sidecar. Empty in format 1,
  // where the base is the store's own file (now the view).
  std::string base_file;
  std::vector<std::int64_t> segments;
};

std::optional<Manifest> read_manifest(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::nullopt;
  std::istringstream in(detail::read_file(file));
  std::string word;
  std::int64_t version = 0;
  Manifest m;
  if (!(in >> word >> version) || word != "mpibatch-manifest") {
    throw StoreCorruptError(file.string() + ": not an mpibatch manifest");
  }
  if (version > kStoreFormat) {
    throw StoreVersionError(file.string() + ": manifest format version " + std::to_string(version) +
                            " is newer than this mpibatch reads (" + std::to_string(kStoreFormat) +
                            ")");
  }
  std::int64_t seq = 0;
  while (in >> word >> seq) {
    if (word == "base") {
      m.base = seq;
      if (version >= 2 && !(in >> m.base_file))
        throw StoreCorruptError(file.string() + ": base without its file");
      if (m.base_file.find('/') != std::string::npos || !m.base_file.starts_with("base-"))
        if (version >= 2) throw StoreCorruptError(file.string() + ": bad base file name");
    } else if (word == "segment")
      m.segments.push_back(seq);
    else
      throw StoreCorruptError(file.string() + ": unknown entry '" + word + "'");
  }
  std::sort(m.segments.begin(), m.segments.end());
  return m;
}

void write_manifest(const fs::path& file, const Manifest& m) {
  std::string text = "mpibatch-manifest " + std::to_string(kStoreFormat) + "\nbase " +
                     std::to_string(m.base) + " " + m.base_file + "\n";
  for (auto seq : m.segments) text += "segment " + std::to_string(seq) + "\n";
  const fs::path tmp = file.string() + ".tmp";
  {
    detail::Fd fd = detail::open_or_throw(tmp.string(), O_WRONLY | O_CREAT | O_TRUNC);
    detail::write_all(fd.get(), text, tmp.string());
  }
  detail::atomic_replace(tmp, file);
}

void validate_job(const JobInfo& job) {
  static const std::regex kName("[A-Za-z0-9_.+-]+");
  if (!std::regex_match(job.name, kName)) {
    throw UsageError("job name '" + job.name + "': use letters, digits and _ . + - only");
  }
  for (const auto* fields : {&job.params, &job.results}) {
    for (const auto& f : *fields) {
      if (!std::regex_match(f.name, kName)) {
        throw UsageError("job " + job.name + ": field name '" + f.name +
                         "': use letters, digits and _ . + - only");
      }
    }
  }
}

bool value_matches(const Value& v, FieldType t) {
  switch (t) {
    case FieldType::int64:
      return std::holds_alternative<std::int64_t>(v);
    case FieldType::float64:
      return std::holds_alternative<double>(v);
    case FieldType::boolean:
      return std::holds_alternative<bool>(v);
    case FieldType::string:
      return std::holds_alternative<std::string>(v);
  }
  return false;
}

}  // namespace

struct Store::Impl {
  fs::path path;
  fs::path dir;  // sidecar
  StoreOptions opt;
  std::vector<Problem> problems;
  detail::LockFile lock;

  std::vector<std::unique_ptr<TableReader>> tables;  // base first, then segments by seq
  std::vector<std::unique_ptr<Remap>> remaps;        // per table; null: Locs are direct
  std::int64_t base_seq = 0;
  std::string base_file;  // the base table in the sidecar; empty: the store's file (format 1)
  std::int64_t last_seq = 0;           // highest number of any table or log seen or made
  std::vector<std::int64_t> segments;  // live segments, as in the MANIFEST

  absl::flat_hash_map<TaskKey, Loc, TaskKeyHash> index;
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
  std::size_t phantoms = 0;         // index values with no record behind them
  std::array<detail::MemTable, 2> mems;
  unsigned active = 0;  // the memtable that takes appends
  // The table number each memtable's rows carry in Locs (kNoTable: unused).
  std::array<std::uint32_t, 2> mem_table{kNoTable, kNoTable};

  // A segment being written in the background from mems[slot].
  struct Flush {
    unsigned slot = 0;
    std::int64_t seq = 0;
    std::map<detail::MemTable::JobVersion, std::vector<detail::MemTable::LiveRow>> live;
    std::unique_ptr<Remap> remap;  // made by the flush thread; groups filled in on finish
    std::future<void> done;
  };
  std::unique_ptr<Flush> pending;
  std::string broken;  // why this writer can no longer write, if it cannot
  std::vector<JobInfo> jobs;
  std::map<std::int64_t, RunInfo> runs;

  std::unique_ptr<detail::LogWriter> log;
  // Job ids of the current log (writer) and of the log being replayed.
  std::map<std::pair<std::string, std::int64_t>, std::uint32_t> log_job_ids;
  std::vector<std::pair<std::string, std::int64_t>> replay_jobs;
  std::vector<fs::path> covered_logs;  // logs whose frames are all in mem
  bool uncommitted = false;
  // Anything (records, tasks, jobs, runs) in the logs but in no table yet.
  bool unflushed = false;
  bool closed = false;

  bool writer() const { return !opt.read_only; }

  void require_records(const char* what) const {
    if (opt.metadata_only)
      throw UsageError("store " + path.string() + " is open for its metadata only: cannot " + what);
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

  void add_job(const JobInfo& job) {
    for (const auto& j : jobs)
      if (j.name == job.name && j.version == job.version) return;
    jobs.push_back(job);
  }

  void apply_frame(std::string_view payload, std::uint64_t format, const fs::path& file) {
    unflushed = true;
    detail::Decoder d(payload.substr(1));
    switch (static_cast<detail::FrameType>(payload[0])) {
      case detail::FrameType::job: {
        std::uint32_t id = 0;
        JobInfo job = detail::decode_job(d, id);
        if (replay_jobs.size() <= id) replay_jobs.resize(id + 1);
        replay_jobs[id] = {job.name, job.version};
        add_job(job);
        break;
      }
      case detail::FrameType::records:
        if (opt.metadata_only) break;
        detail::decode_records(d, format, [&](std::uint32_t id, Record&& r) {
          if (id >= replay_jobs.size() || replay_jobs[id].first.empty()) {
            throw StoreCorruptError("record of job id " + std::to_string(id) +
                                    ", which the log does not define");
          }
          r.job = replay_jobs[id].first;
          r.job_version = replay_jobs[id].second;
          insert_mem(std::move(r));
        });
        break;
      case detail::FrameType::run: {
        RunInfo r = detail::decode_run(d);
        runs[r.id] = std::move(r);
        break;
      }
      case detail::FrameType::tasks: {
        if (opt.metadata_only) break;
        std::vector<TaskKey> keys;
        const auto run = detail::decode_tasks(d, keys);
        mem().add_tasks(run, keys);
        break;
      }
      default:
        problems.push_back({file.string(), "frame of unknown type " + std::to_string(payload[0])});
    }
  }

  // Points the index at row of the active memtable.
  void index_mem(const TaskKey& key, bool failed, std::size_t row) {
    const Loc loc = Loc::make(mem_table[active], 0, failed, row);
    auto [it, inserted] = index.try_emplace(key, loc);
    if (inserted) return;
    Loc& v = it->second;
    if (v.table() == kReleased) {
      --phantoms;
      v = loc;
    } else if (v.table() == kClaimed) {  // appended without its claim: what the claim replaces
      ClaimRec& c = claims[v.row()];
      if (c.had_old)
        supersede(c.old);
      else
        --phantoms;
      c.old = loc;
      c.had_old = true;
    } else {
      supersede(v);
      v = loc;
    }
  }

  // Marks the record at old as replaced. Only the active memtable is
  // marked: a frozen one is being written.
  void supersede(Loc old) {
    if (old.table() == mem_table[active]) mem().entries[old.row()].superseded = true;
  }

  // The location a reader sees for an index value: a claimed key's one
  // before the claim. nullptr: no record.
  const Loc* visible(const Loc& v) const {
    if (v.table() == kReleased) return nullptr;
    if (v.table() != kClaimed) return &v;
    const ClaimRec& c = claims[v.row()];
    return c.had_old ? &c.old : nullptr;
  }

  // Points the claims at their slots again after the index grew (moving them).
  void refresh_claims() {
    if (index.capacity() == claims_capacity) return;
    for (ClaimRec& c : claims)
      if (c.live) c.slot = &*index.find(c.key);
    claims_capacity = index.capacity();
  }

  void claim(std::span<const TaskKey> keys, std::span<Lookup> out, std::span<Claim> ids,
             bool claim_failed) {
    require_writer("claim keys");
    if (out.size() != keys.size() || ids.size() != keys.size())
      throw UsageError("claim: output sizes differ from the key count");
    refresh_claims();
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (i + kPrefetch < keys.size()) detail::prefetch(index, keys[i + kPrefetch]);
      // A new key holds a kReleased marker until its claim is made: a
      // throw in between leaves no location that points at a record.
      auto [it, inserted] = index.try_emplace(keys[i], Loc::make(kReleased, 0, false, 0));
      Loc& v = it->second;
      ClaimRec c{keys[i], &*it, Loc{}, false, true};
      if (inserted) {
        ++phantoms;
      } else if (v.table() == kClaimed) {
        out[i] = Lookup::claimed;
        continue;
      } else if (v.table() != kReleased) {
        if (!v.failed() || !claim_failed) {
          out[i] = v.failed() ? Lookup::failed : Lookup::ok;
          continue;
        }
        c.old = v;
        c.had_old = true;
      }
      Claim id = 0;
      if (free_claims.empty()) {
        if (claims.size() >= kMaxRows) throw UsageError("claim: too many unsettled claims");
        id = static_cast<Claim>(claims.size());
        claims.push_back(c);
      } else {
        id = free_claims.back();
        free_claims.pop_back();
        claims[id] = c;
      }
      v = Loc::make(kClaimed, 0, false, id);
      ids[i] = id;
      out[i] = Lookup::missing;
    }
    refresh_claims();  // an insert above may have grown the index
  }

  // Throws unless ids[i] is an outstanding claim of keys[i], each once.
  void check_claims(std::span<const TaskKey> keys, std::span<const Claim> ids) {
    if (ids.size() != keys.size()) {
      throw UsageError("append: " + std::to_string(ids.size()) + " claims for " +
                       std::to_string(keys.size()) + " records");
    }
    std::size_t i = 0;
    for (; i < ids.size(); ++i) {
      if (ids[i] >= claims.size() || !claims[ids[i]].live || claims[ids[i]].key != keys[i]) break;
      claims[ids[i]].live = false;  // taken, so that a repeated id fails
    }
    for (std::size_t j = 0; j < i; ++j) claims[ids[j]].live = true;
    if (i < ids.size()) {
      throw UsageError("append: record " + std::to_string(i) + " names claim " +
                       std::to_string(ids[i]) +
                       ", which is not an outstanding claim of its key (or is named twice)");
    }
  }

  // Points a claimed key's slot at row of the active memtable.
  void settle(Claim id, bool failed, std::size_t row) {
    ClaimRec& c = claims[id];
    if (c.had_old)
      supersede(c.old);
    else
      --phantoms;
    c.slot->second = Loc::make(mem_table[active], 0, failed, row);
    c.live = false;
    free_claims.push_back(id);
  }

  void release_claims() {
    refresh_claims();
    for (const ClaimRec& c : claims)
      if (c.live) c.slot->second = c.had_old ? c.old : Loc::make(kReleased, 0, false, 0);
    claims.clear();
    free_claims.clear();
  }

  void insert_mem(const Record& r) { index_mem(r.key, r.status == Status::failed, mem().add(r)); }

  void index_table(std::uint32_t t) {
    const TableReader& tr = *tables[t];
    read_metadata(tr);
    if (opt.metadata_only) return;
    std::vector<TaskKey> keys;
    std::vector<std::int8_t> status;
    for (std::size_t g = 0; g < tr.groups().size(); ++g) {
      tr.read_index(g, keys, status);
      for (std::size_t i = 0; i < keys.size(); ++i) {
        if (i + kPrefetch < keys.size()) detail::prefetch(index, keys[i + kPrefetch]);
        index.insert_or_assign(keys[i],
                               Loc::make(t, static_cast<std::uint32_t>(g), status[i] != 0, i));
      }
    }
  }

  void read_metadata(const TableReader& tr) {
    for (const auto& g : tr.groups()) add_job(g.job);
    for (const auto& r : tr.runs()) runs[r.id] = r;
  }

  fs::path manifest_path() const { return dir / "MANIFEST"; }
  fs::path base_path() const { return base_file.empty() ? path : dir / base_file; }

  void save_manifest() {
    write_manifest(manifest_path(), Manifest{base_seq, base_file, segments});
  }

  // A new name for a base table through seq: never one a view may still map.
  static std::string new_base_name(std::int64_t seq) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    return "base-" + seq_name(seq, "") + "-" + std::to_string(ns) + ".h5";
  }

  // Format 1 to 2: the base table (the store's file) gets a name in the
  // sidecar by a hard link, so nothing is copied; the MANIFEST naming it is
  // the commit point, and the view then takes the store's file name.
  void migrate() {
    const std::string name = new_base_name(base_seq);
    const fs::path target = dir / name;
    detail::link_or_copy(path, target);
    base_file = name;
    tables.front() = std::make_unique<TableReader>(target);
    save_manifest();
  }

  static hsize_t rows_of(const TableReader& t) {
    hsize_t n = 0;
    for (const auto& g : t.groups()) n += g.rows;
    return n;
  }

  // Where a merge of the newest tables starts, or tables.size() for none:
  // with more than kCalmTables tables, going back from the newest, a table
  // joins while its rows are at most twice those already taken (universal
  // compaction's size ratio), and four or more make a merge. A run's own
  // segments (a 2^20-entry memtable each) are so left as they are unless
  // there are many. Sizes so grow geometrically, and a record is
  // rewritten about log(records) times over the store's life. From lowest
  // on: 0 lets the base join (its rewrite), 1 keeps it out.
  std::size_t merge_start(std::size_t lowest) const {
    if (tables.size() <= kCalmTables || tables.size() < lowest + 4) return tables.size();
    std::size_t first = tables.size() - 1;
    hsize_t taken = rows_of(*tables[first]);
    while (first > lowest && rows_of(*tables[first - 1]) <= 2 * std::max<hsize_t>(taken, 1)) {
      --first;
      taken += rows_of(*tables[first]);
    }
    return tables.size() - first >= 4 ? first : tables.size();
  }

  // Tables first.. (segments, the newest) into one new segment, live rows
  // only, in storage order. Committed by the MANIFEST; the view follows.
  // For close_merging only: the index is not updated (fresh marks tables
  // written here, whose rows are all live).
  void merge_range(std::size_t first, std::vector<bool>& fresh) {
    const std::int64_t seq = ++last_seq;  // above every file: keeps the MANIFEST's order
    const std::string name = seq_name(seq, ".h5");
    {
      detail::TableWriter w(dir / (name + ".tmp"), seq);
      w.add_jobs(jobs);
      std::vector<TaskKey> keys;
      std::vector<std::int8_t> status;
      std::vector<hsize_t> live;
      for (std::size_t t = first; t < tables.size(); ++t) {
        const TableReader& tr = *tables[t];
        for (std::size_t g = 0; g < tr.groups().size(); ++g) {
          tr.read_index(g, keys, status);
          live.clear();
          for (std::size_t i = 0; i < keys.size(); ++i) {
            bool ok = fresh[t];
            if (!ok) {
              const auto it = index.find(keys[i]);
              const Loc* loc = it == index.end() ? nullptr : visible(it->second);
              if (loc != nullptr) {
                const Place p = place(*loc);
                ok = p.mem < 0 && p.table == t && p.group == g && p.row == i;
              }
            }
            if (ok) live.push_back(i);
          }
          const JobInfo& job = tr.groups()[g].job;
          for (std::size_t at = 0; at < live.size(); at += kFetchChunk) {
            const std::vector<hsize_t> chunk(
                live.begin() + static_cast<std::ptrdiff_t>(at),
                live.begin() + static_cast<std::ptrdiff_t>(std::min(live.size(), at + kFetchChunk)));
            const auto records = tr.read_rows(g, chunk);
            std::vector<const Record*> ptrs;
            for (const auto& r : records) ptrs.push_back(&r);
            w.append(job.name, job.version, ptrs);
          }
        }
      }
      for (const auto& [id, run] : runs) {
        keys.clear();
        for (std::size_t t = first; t < tables.size(); ++t) tables[t]->read_tasks(id, keys);
        if (!keys.empty()) w.append_tasks(id, keys);
      }
      w.set_runs(run_list());
      w.finish(dir / name);
    }
    tables.resize(first);
    remaps.resize(first);
    fresh.resize(first);
    tables.push_back(std::make_unique<TableReader>(dir / name));
    remaps.push_back(nullptr);
    fresh.push_back(true);
    segments.resize(first - 1);  // segments[k] is tables[k + 1]
    segments.push_back(seq);
    save_manifest();
    write_view();
    remove_obsolete();
    detail::fsync_dir(dir);
  }

  // An empty base gives way to the oldest segment, which becomes the base
  // by a hard link (no copy): a first run is never rewritten. Like
  // merge_range, for close_merging only (the index is not updated).
  void promote_first_segment() {
    const fs::path segment = tables[1]->path();
    const std::string name = new_base_name(segments.front());
    const fs::path target = dir / name;
    detail::link_or_copy(segment, target);
    base_file = name;
    base_seq = segments.front();
    tables.erase(tables.begin());
    tables.front() = std::make_unique<TableReader>(target);
    remaps.erase(remaps.begin());
    segments.erase(segments.begin());
    save_manifest();
    write_view();
    remove_obsolete();
    detail::fsync_dir(dir);
  }

  // The store's file: virtual datasets over the tables (see view.hpp).
  void write_view() { detail::write_view(path, view_sources(), jobs, run_list()); }

  std::vector<detail::ViewSource> view_sources() const {
    std::vector<detail::ViewSource> sources;
    const std::string side = dir.filename().string();
    for (const auto& t : tables) {
      detail::ViewSource src;
      src.file = side + "/" + t->path().filename().string();
      for (const auto& g : t->groups()) src.rows[{g.job.name, g.job.version}] = g.rows;
      src.tasks = t->task_rows();
      sources.push_back(std::move(src));
    }
    return sources;
  }

  // Returns false when a file vanished or changed under us (a compaction
  // ran): retry. On the last attempt, what is missing is reported instead.
  bool load(bool last_attempt) {
    tables.clear();
    remaps.clear();
    index.clear();
    claims.clear();
    free_claims.clear();
    phantoms = 0;
    for (auto& m : mems) m.clear();
    active = 0;
    mem_table = {kNoTable, kNoTable};
    jobs.clear();
    runs.clear();
    covered_logs.clear();
    problems.clear();
    segments.clear();
    unflushed = false;

    const std::optional<Manifest> manifest = read_manifest(manifest_path());
    base_file = manifest ? manifest->base_file : std::string();
    std::unique_ptr<TableReader> base;
    try {
      base = std::make_unique<TableReader>(base_path());
    } catch (const StoreVersionError&) {
      throw;
    } catch (const Error& e) {
      if (!manifest) throw;  // a lone file that is not a store, or damaged
      std::error_code ec;
      const bool there = fs::exists(base_path(), ec);
      if (!there && !last_attempt) return false;  // a compaction replaced it: read again
      problems.push_back({base_path().string(), there ? e.what() : "base table is missing"});
    }
    base_seq = base ? base->through_seq() : manifest ? manifest->base : 0;
    if (manifest && manifest->base > base_seq && !last_attempt) return false;
    last_seq = base_seq;
    if (base) tables.push_back(std::move(base));

    std::vector<std::pair<std::int64_t, fs::path>> logs;
    bool unlisted_segments = false;
    std::error_code ec;
    if (fs::is_directory(dir, ec)) {
      for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        const auto seg = parse_seq(name, ".h5");
        const auto lg = parse_seq(name, ".log");
        if (lg >= 0) logs.emplace_back(lg, entry.path());
        if (seg > base_seq) unlisted_segments = true;
        last_seq = std::max({last_seq, seg, lg});
      }
      if (ec) detail::throw_errno("readdir", dir.string());
    }
    std::sort(logs.begin(), logs.end());
    if (!manifest && unlisted_segments) {
      problems.push_back({manifest_path().string(), "MANIFEST is missing; segments are not read"});
    }

    std::int64_t covered = base_seq;
    for (const auto seq : manifest ? manifest->segments : std::vector<std::int64_t>{}) {
      if (seq <= base_seq) continue;
      segments.push_back(seq);
      covered = seq;
      const fs::path p = dir / seq_name(seq, ".h5");
      if (!fs::exists(p, ec) && !last_attempt) return false;
      if (tables.size() >= kMaxTables)
        throw StoreError(path.string() + ": too many segments; compact it");
      try {
        tables.push_back(std::make_unique<TableReader>(p));
      } catch (const StoreVersionError&) {
        throw;
      } catch (const Error& e) {
        problems.push_back(
            {p.string(), fs::exists(p, ec) ? e.what() : "segment listed in MANIFEST is missing"});
      }
    }
    last_seq = std::max(last_seq, covered);
    std::size_t rows = 0;
    for (const auto& t : tables)
      for (const auto& g : t->groups()) rows += g.rows;
    // A writer adds about a segment's worth before its next table: room for
    // it up front saves the index's early rehashes (address space only).
    const std::size_t room = writer() ? std::min<std::size_t>(opt.segment_records, kReserveMax) : 0;
    if (!opt.metadata_only) index.reserve(rows + room);
    for (auto& m : mems) m.entries.reserve(room);
    for (std::uint32_t t = 0; t < tables.size(); ++t) {
      try {
        index_table(t);
      } catch (const Error& e) {
        problems.push_back({tables[t]->path().string(), e.what()});
      }
    }
    remaps.resize(tables.size());
    mem_table[active] = static_cast<std::uint32_t>(tables.size());
    for (const auto& [seq, p] : logs) {
      if (seq <= covered) continue;
      try {
        replay_jobs.clear();
        detail::replay_log(
            p, [&](std::string_view f, std::uint64_t format) { apply_frame(f, format, p); },
            problems);
      } catch (const IoError&) {
        if (!fs::exists(p) && !last_attempt) return false;
        throw;
      } catch (const StoreVersionError&) {
        throw;
      } catch (const Error& e) {
        problems.push_back({p.string(), e.what()});
      }
      covered_logs.push_back(p);
    }
    return true;
  }

  // Writers: deletes what the MANIFEST and base no longer need: folded or
  // orphaned segments, logs a segment covers, temporaries of a crash.
  void remove_obsolete() {
    const std::int64_t newest = segments.empty() ? base_seq : segments.back();
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      const auto seg = parse_seq(name, ".h5");
      const auto lg = parse_seq(name, ".log");
      const bool listed = std::find(segments.begin(), segments.end(), seg) != segments.end();
      const bool old_base = name.starts_with("base-") && name != base_file;
      const bool obsolete = (seg >= 0 && !listed) || (lg >= 0 && lg <= newest) ||
                            name.ends_with(".tmp") || old_base;
      if (obsolete) fs::remove(entry.path(), ec);
    }
  }

  void start_log() {
    ++last_seq;
    log = std::make_unique<detail::LogWriter>(dir / seq_name(last_seq, ".log"));
    log_job_ids.clear();
  }

  // The current log's id of a job, writing its definition first if needed.
  std::uint32_t log_job_id(const JobInfo& job) {
    auto [it, added] = log_job_ids.try_emplace({job.name, job.version},
                                               static_cast<std::uint32_t>(log_job_ids.size()));
    if (added) {
      log->add([&](std::string& out) { detail::encode_job(out, it->second, job); });
    }
    return it->second;
  }

  // ------------------------------------------------------------ writing

  const JobInfo& job_of(const std::string& name, std::int64_t version) const {
    for (const auto& j : jobs)
      if (j.name == name && j.version == version) return j;
    throw UsageError("record for job " + name + " v" + std::to_string(version) +
                     ", which is not defined in store " + path.string());
  }

  void check_record(const Record& r, const JobInfo& job) const {
    check_values(r, "param", r.params, job.params);
    if (r.status == Status::failed) {
      if (!r.values.empty())
        throw UsageError("failed record of job " + r.job + " carries result values");
      return;
    }
    check_values(r, "result", r.values, job.results);
  }

  static void check_values(const Record& r, const char* what, const std::vector<Value>& values,
                           const std::vector<Field>& fields) {
    if (values.size() != fields.size()) {
      throw UsageError("record of job " + r.job + " has " + std::to_string(values.size()) + " " +
                       what + " values; the job defines " + std::to_string(fields.size()));
    }
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (!value_matches(values[i], fields[i].type)) {
        throw UsageError("record of job " + r.job + ": " + what + " field '" + fields[i].name +
                         "' has a value of the wrong type");
      }
    }
  }

  std::vector<RunInfo> run_list() const {
    std::vector<RunInfo> out;
    for (const auto& [id, r] : runs) out.push_back(r);
    return out;
  }

  // Freezes the active memtable and writes it to a segment on a background
  // thread, so the caller (the master rank, in a run) never waits on HDF5.
  // The segment is committed by the MANIFEST; only then are its logs
  // deleted. Requires everything logged to be committed and no flush pending.
  void start_flush() {
    if (tables.size() + 2 >= kMaxTables)
      throw StoreError(path.string() + ": too many segments; compact it");
    auto f = std::make_unique<Flush>();
    f->slot = active;
    f->seq = last_seq;  // the current log's number
    std::vector<fs::path> logs = covered_logs;
    logs.push_back(log->path());
    covered_logs.clear();
    log.reset();
    active = 1 - active;
    mem_table[active] = static_cast<std::uint32_t>(tables.size() + 1);  // after the frozen one
    start_log();
    unflushed = false;

    const detail::MemTable* frozen = &mems[f->slot];
    Manifest manifest{base_seq, base_file, segments};
    manifest.segments.push_back(f->seq);
    f->done = std::async(std::launch::async, [this, f = f.get(), frozen, manifest, jobs_copy = jobs,
                                              runs_copy = run_list(), logs] {
      f->live = frozen->live();
      f->remap = std::make_unique<Remap>();
      f->remap->pos.assign(frozen->entries.size(), Remap::kGone);
      std::uint32_t pos = 0;
      for (const auto& [job, live] : f->live) {
        f->remap->first.push_back(pos);
        for (const auto& r : live) f->remap->pos[r.row] = pos++;
      }
      const std::string name = seq_name(f->seq, ".h5");
      detail::TableWriter w(dir / (name + ".tmp"), f->seq);
      w.add_jobs(jobs_copy);
      // Decoded a chunk at a time straight into columns, reused from chunk to chunk.
      detail::RowColumns rows;
      for (const auto& [job, live] : f->live) {
        if (live.size() > kMaxRows) throw StoreError("segment too large");
        const auto info = std::find_if(jobs_copy.begin(), jobs_copy.end(), [&job](const auto& j) {
          return j.name == job.first && j.version == job.second;
        });
        if (info == jobs_copy.end()) throw StoreError("memtable record of an unknown job");
        for (std::size_t at = 0; at < live.size(); at += kFetchChunk) {
          const std::size_t end = std::min(live.size(), at + kFetchChunk);
          rows.reset(*info);
          for (std::size_t j = at; j < end; ++j) {
            frozen->read_row(live[j].offset, live[j].size, rows);
          }
          w.append(job.first, job.second, rows);
        }
      }
      for (const auto& [run, keys] : frozen->tasks)
        if (!keys.empty()) w.append_tasks(run, keys);
      w.set_runs(runs_copy);
      w.finish(dir / name);
      write_manifest(manifest_path(), manifest);
      std::error_code ec;
      for (const auto& p : logs) fs::remove(p, ec);
      detail::fsync_dir(dir);
    });
    pending = std::move(f);
  }

  // Waits for the pending flush and points the index at its segment.
  void finish_flush() {
    if (!pending) return;
    std::unique_ptr<Flush> f = std::move(pending);
    try {
      f->done.get();
    } catch (const std::exception& e) {
      // The records are still in the logs; this writer stops writing.
      broken = std::string("writing a segment failed: ") + e.what();
      throw StoreError("store " + path.string() + ": " + broken);
    }
    // The segment is in the MANIFEST already; if this writer cannot read it
    // back as expected, it stops writing (the records are safe on disk).
    auto fail = [&](const std::string& why) {
      broken = why;
      throw StoreError("store " + path.string() + ": " + broken);
    };
    segments.push_back(f->seq);
    if (tables.size() != mem_table[f->slot]) fail("internal error: segment number out of order");
    auto table = std::make_unique<TableReader>(dir / seq_name(f->seq, ".h5"));
    // The memtable's k-th job (in live's order) is the table's group of that job.
    const auto& groups = table->groups();
    for (const auto& [job, live] : f->live) {
      const auto g = std::find_if(groups.begin(), groups.end(), [&job](const auto& grp) {
        return grp.job.name == job.first && grp.job.version == job.second;
      });
      if (g == groups.end()) fail(table->path().string() + " lacks job " + job.first);
      f->remap->group.push_back(static_cast<std::uint32_t>(g - groups.begin()));
    }
    tables.push_back(std::move(table));
    remaps.push_back(std::move(f->remap));
    mems[f->slot].clear();
    mem_table[f->slot] = kNoTable;
    write_view();
  }

  // Everything logged so far into segments, before returning.
  void flush_now() {
    finish_flush();
    if (unflushed) {
      start_flush();
      finish_flush();
    }
  }

  void commit() {
    require_writer("commit");
    if (uncommitted) {
      log->commit();
      uncommitted = false;
      unflushed = true;
    }
    if (pending && pending->done.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      finish_flush();
    }
    if (mem().size() >= opt.segment_records) {
      finish_flush();  // at most one in flight: memory stays bounded
      start_flush();
    }
  }

  // Checks a batch against its jobs (all or nothing) and logs it as one frame.
  // Checks a batch against its jobs (all or nothing), logs it as one frame,
  // copies the frame's record bytes into the active memtable's arena and
  // points the index at them: one encoding, no per-record allocation.
  void append_batch(std::span<const Record> records) {
    require_writer("append records");
    if (records.empty()) return;
    detail::MemTable& m = mem();
    std::vector<std::uint32_t> ids(records.size());
    std::vector<std::uint16_t> mem_jobs(records.size());
    const JobInfo* job = nullptr;
    for (std::size_t i = 0; i < records.size(); ++i) {
      const Record& r = records[i];
      // Batches are usually of one job: look it up only when it changes.
      if (!job || job->name != r.job || job->version != r.job_version) {
        job = &job_of(r.job, r.job_version);
        ids[i] = log_job_id(*job);
        mem_jobs[i] = m.job_index(job->name, job->version);
      } else {
        ids[i] = ids[i - 1];
        mem_jobs[i] = mem_jobs[i - 1];
      }
      check_record(r, *job);
    }
    std::vector<std::size_t> offsets;
    offsets.reserve(records.size() + 1);
    log_records(offsets,
                [&](std::string& out) { detail::encode_records(out, records, ids, &offsets); });
    for (std::size_t i = 0; i < records.size(); ++i) {
      if (i + kPrefetch < records.size()) detail::prefetch(index, records[i + kPrefetch].key);
      add_row(records[i].key, mem_jobs[i], records[i].status == Status::failed, offsets, i);
    }
    uncommitted = true;
  }

  // A columnar batch: checked whole, then one frame as append_batch does.
  // ids: the rows' claims, or empty.
  void append_columns(const RecordBatch& b, std::span<const Claim> ids) {
    require_writer("append records");
    const std::size_t n = b.size();
    if (n == 0) return;
    const JobInfo& job = job_of(b.job, b.job_version);
    const std::string what = "record batch of job " + b.job;
    auto rows = [&](const char* column, std::size_t size) {
      if (size != n) {
        throw UsageError(what + ": column " + column + " has " + std::to_string(size) +
                         " rows, the keys " + std::to_string(n));
      }
    };
    rows("status", b.status.size());
    rows("rank", b.rank.size());
    rows("start_time", b.start_time.size());
    rows("duration", b.duration.size());
    rows("result_sizes", b.result_sizes.size());
    rows("error_sizes", b.error_sizes.size());
    auto total = [](const std::vector<std::uint32_t>& sizes) {
      std::uint64_t t = 0;
      for (auto v : sizes) t += v;
      return t;
    };
    if (total(b.result_sizes) != b.results.size() || total(b.error_sizes) != b.errors.size())
      throw UsageError(what + ": result or error sizes do not add up to their bytes");
    auto columns = [&](const char* kind, const std::vector<ValueColumn>& cols,
                       const std::vector<Field>& fields) {
      if (cols.size() != fields.size()) {
        throw UsageError(what + " has " + std::to_string(cols.size()) + " " + kind +
                         " columns; the job defines " + std::to_string(fields.size()));
      }
      for (std::size_t c = 0; c < cols.size(); ++c) {
        if (cols[c].index() != static_cast<std::size_t>(fields[c].type)) {
          throw UsageError(what + ": " + kind + " field '" + fields[c].name +
                           "' has a column of the wrong type");
        }
        rows(fields[c].name.c_str(), std::visit([](const auto& v) { return v.size(); }, cols[c]));
      }
    };
    columns("result", b.values, job.results);
    columns("param", b.params, job.params);
    if (!ids.empty()) check_claims(b.keys, ids);

    const std::uint32_t id = log_job_id(job);
    const std::uint16_t mem_job = mem().job_index(job.name, job.version);
    std::vector<std::size_t> offsets;
    offsets.reserve(n + 1);
    log_records(offsets, [&](std::string& out) { detail::encode_records(out, b, id, &offsets); });
    if (ids.empty()) {
      for (std::size_t i = 0; i < n; ++i) {
        if (i + kPrefetch < n) detail::prefetch(index, b.keys[i + kPrefetch]);
        add_row(b.keys[i], mem_job, b.status[i] == Status::failed, offsets, i);
      }
    } else {
      refresh_claims();
      detail::MemTable& m = mem();
      for (std::size_t i = 0; i < n; ++i) {
        if (i + kPrefetch < n) __builtin_prefetch(claims[ids[i + kPrefetch]].slot, 1);
        const std::size_t row = m.add_encoded(b.keys[i], mem_job, b.status[i] == Status::failed,
                                              offsets[i], row_size(offsets, i));
        settle(ids[i], b.status[i] == Status::failed, row);
      }
    }
    uncommitted = true;
  }

  // Logs the records frame encode() writes (it pushes each record's start
  // onto offsets) and copies its record bytes into the active memtable's
  // arena; offsets end up relative to the arena, plus one past the last.
  template <class Encode>
  void log_records(std::vector<std::size_t>& offsets, Encode&& encode) {
    detail::MemTable& m = mem();
    log->add([&](std::string& out) {
      const std::size_t frame_start = out.size();
      encode(out);
      offsets.push_back(out.size());
      const std::size_t arena_base = m.arena.size();
      m.arena.append(std::string_view(out).substr(frame_start));
      for (auto& o : offsets) o = o - frame_start + arena_base;
    });
  }

  // Row i of a logged frame: into the memtable and the index.
  void add_row(const TaskKey& key, std::uint16_t mem_job, bool failed,
               const std::vector<std::size_t>& offsets, std::size_t i) {
    index_mem(key, failed,
              mem().add_encoded(key, mem_job, failed, offsets[i], row_size(offsets, i)));
  }

  static std::uint32_t row_size(const std::vector<std::size_t>& offsets, std::size_t i) {
    return static_cast<std::uint32_t>(offsets[i + 1] - offsets[i]);
  }

  // ------------------------------------------------------------ reading

  // Records at the given locations, in the same order, with one HDF5 read
  // per (table, group) and column.
  Place place(Loc loc) const {
    const std::uint32_t t = loc.table();
    for (int slot = 0; slot < 2; ++slot)
      if (mem_table[slot] == t) return Place{slot, t, 0, loc.row()};
    if (const Remap* m = remaps[t].get()) {
      const std::uint32_t pos = m->pos[loc.row()];
      const auto k = static_cast<std::size_t>(
          std::upper_bound(m->first.begin(), m->first.end(), pos) - m->first.begin() - 1);
      return Place{-1, t, m->group[k], pos - m->first[k]};
    }
    return Place{-1, t, loc.group(), loc.row()};
  }

  // Every record's location (and place), in storage order: tables oldest
  // first (memtables last), then group and row. Reading in this order reads
  // each table front to back, in ranges; key order would be a scattered
  // point read per row (rows are stored in the order appended).
  std::vector<std::pair<Place, Loc>> stored_in_order() const {
    std::vector<std::pair<std::uint64_t, Loc>> order;
    order.reserve(index.size() - phantoms);
    for (const auto& [key, value] : index) {
      if (const Loc* loc = visible(value)) {
        const Place p = place(*loc);
        order.emplace_back((std::uint64_t{p.table} << 48) | (std::uint64_t{p.group} << 32) | p.row,
                           *loc);
      }
    }
    std::sort(order.begin(), order.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::pair<Place, Loc>> out;
    out.reserve(order.size());
    for (const auto& [at, loc] : order) out.emplace_back(place(loc), loc);
    return out;
  }

  std::vector<Record> fetch(const std::vector<Loc>& locs) const {
    std::vector<Record> out(locs.size());
    std::map<std::pair<std::uint32_t, std::uint32_t>, std::vector<std::size_t>> by_group;
    std::vector<hsize_t> table_rows(locs.size());
    for (std::size_t i = 0; i < locs.size(); ++i) {
      const Place p = place(locs[i]);
      if (p.mem >= 0) {
        out[i] = mems[static_cast<std::size_t>(p.mem)].get(p.row);
      } else {
        table_rows[i] = p.row;
        by_group[{p.table, p.group}].push_back(i);
      }
    }
    for (const auto& [tg, idx] : by_group) {
      std::vector<hsize_t> rows;
      rows.reserve(idx.size());
      for (std::size_t i : idx) rows.push_back(table_rows[i]);
      auto recs = tables[tg.first]->read_rows(tg.second, rows);
      for (std::size_t j = 0; j < idx.size(); ++j) out[idx[j]] = std::move(recs[j]);
    }
    return out;
  }
};

const char* to_string(FieldType type) {
  switch (type) {
    case FieldType::int64:
      return "int64";
    case FieldType::float64:
      return "float64";
    case FieldType::boolean:
      return "bool";
    case FieldType::string:
      return "string";
  }
  return "?";
}

const char* to_string(RunState state) {
  switch (state) {
    case RunState::running:
      return "running";
    case RunState::finished:
      return "finished";
    case RunState::stopped:
      return "stopped";
    case RunState::failed:
      return "failed";
    case RunState::crashed:
      return "crashed";
  }
  return "?";
}

// ---------------------------------------------------------------- Store

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;

Store::~Store() {
  if (!impl_) return;
  try {
    close();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpibatch: closing store %s: %s\n", impl_->path.c_str(), e.what());
  }
}

fs::path Store::sidecar(const fs::path& path) {
  return fs::path(path.string() + ".d");
}

std::vector<Problem> Store::check_view() const {
  const Impl& s = *impl_;
  if (s.base_file.empty()) return {};  // format 1: the file is the base table
  std::vector<Problem> out;
  for (auto& what : detail::check_view(s.path, s.view_sources(), s.jobs))
    out.push_back({s.path.string(), std::move(what)});
  return out;
}

bool Store::exists(const fs::path& path) {
  try {
    TableReader t(path);  // a store of format 1
    return true;
  } catch (const Error&) {
    std::error_code ec;  // format 2: the view and its MANIFEST
    if (!fs::exists(sidecar(path) / "MANIFEST", ec)) return false;
    try {
      detail::h5::init();
      const detail::h5::Handle f = detail::h5::open_file_read(path.string());
      return detail::is_view(f.get());
    } catch (const Error&) {
      return false;
    }
  }
}

Store Store::open(const fs::path& path, const StoreOptions& options) {
  detail::h5::init();
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->dir = sidecar(path);
  impl->opt = options;
  const std::string name = path.string();
  if (options.metadata_only && !options.read_only)
    throw UsageError(name + ": metadata_only needs read_only");

  std::error_code ec;
  const bool present = fs::exists(path, ec);
  const bool has_sidecar = fs::exists(impl->manifest_path(), ec);
  if (present && !fs::is_regular_file(path, ec)) {
    throw NotAStoreError(name + ": not a regular file, so not an mpibatch store");
  }
  if (!present && !has_sidecar && (options.read_only || !options.create)) {
    throw NotAStoreError(name + ": no such store");
  }
  // Before creating anything beside it: is the file a store of our format?
  if (present && !has_sidecar) TableReader check(path);

  if (impl->writer()) {
    if (!fs::is_directory(impl->dir, ec)) {
      fs::create_directory(impl->dir, ec);
      if (ec) throw IoError("cannot create " + impl->dir.string() + ": " + ec.message());
      detail::fsync_dir(impl->dir.parent_path());
    }
    impl->lock = detail::LockFile::acquire(impl->dir / "LOCK", name);
    fs::remove(path.string() + ".tmp", ec);  // a view or compaction cut short by a crash
    if (!fs::exists(path, ec) && !fs::exists(impl->manifest_path(), ec)) {
      impl->base_file = Impl::new_base_name(0);
      detail::TableWriter w(impl->dir / (impl->base_file + ".tmp"), 0);
      w.finish(impl->dir / impl->base_file);
      impl->save_manifest();
    }
  }

  constexpr int kAttempts = 20;
  bool loaded = false;
  for (int attempt = 0; attempt < kAttempts && !loaded; ++attempt) {
    loaded = impl->load(attempt == kAttempts - 1);
    if (!loaded) ::usleep(50000);
  }

  if (impl->writer()) {
    if (!impl->problems.empty() && !options.allow_damaged) {
      const auto& p = impl->problems.front();
      throw StoreCorruptError("store " + name + " is damaged: " + p.file + ": " + p.what +
                              (impl->problems.size() > 1
                                   ? " (and " + std::to_string(impl->problems.size() - 1) + " more)"
                                   : std::string()) +
                              "; run 'mpibatch verify'");
    }
    if (impl->tables.empty() || impl->tables.front()->path() != impl->base_path()) {
      // allow_damaged, the base lost: a new empty one keeps the segments
      // valid (tables keep their numbers; the next open reads it). A damaged
      // store file of format 1 is kept aside, not replaced by the view.
      if (impl->base_file.empty() && fs::exists(path, ec))
        fs::rename(path, impl->dir / ("damaged-" + path.filename().string()), ec);
      impl->base_file = Impl::new_base_name(impl->base_seq);
      detail::TableWriter w(impl->dir / (impl->base_file + ".tmp"), impl->base_seq);
      w.finish(impl->dir / impl->base_file);
      impl->save_manifest();
    } else if (impl->base_file.empty()) {
      impl->migrate();
    }
    if (!fs::exists(impl->manifest_path(), ec)) impl->save_manifest();
    // The view first: until it is replaced, the old one may map what goes next.
    impl->write_view();
    impl->remove_obsolete();
    impl->start_log();
    // A run still "running" was cut short by a crash: say so.
    for (auto& [id, r] : impl->runs) {
      if (r.state == RunState::running) {
        r.state = RunState::crashed;
        impl->log->add([&](std::string& out) { detail::encode_run(out, r); });
        impl->uncommitted = true;
      }
    }
    impl->commit();
  }
  return Store(std::move(impl));
}

const fs::path& Store::path() const {
  return impl_->path;
}
bool Store::read_only() const {
  return impl_->opt.read_only;
}
const std::vector<Problem>& Store::problems() const {
  return impl_->problems;
}

void Store::define_job(const JobInfo& job) {
  impl_->require_writer("define a job");
  validate_job(job);
  for (const auto& j : impl_->jobs) {
    if (j.name == job.name && j.version == job.version) {
      if (j == job) return;
      throw UsageError("job " + job.name + " v" + std::to_string(job.version) +
                       " is already defined in store " + impl_->path.string() +
                       " with other fields or description; give it a new version");
    }
  }
  impl_->jobs.push_back(job);
  impl_->log_job_id(job);
  impl_->uncommitted = true;
}

std::vector<JobInfo> Store::jobs() const {
  return impl_->jobs;
}

const JobInfo* Store::find_job(const std::string& name, std::int64_t version) const {
  for (const auto& j : impl_->jobs)
    if (j.name == name && j.version == version) return &j;
  return nullptr;
}

std::int64_t Store::begin_run(RunInfo info) {
  impl_->require_writer("begin a run");
  info.id = impl_->runs.empty() ? 1 : impl_->runs.rbegin()->first + 1;
  info.state = RunState::running;
  info.task_count = 0;
  impl_->log->add([&](std::string& out) { detail::encode_run(out, info); });
  impl_->runs[info.id] = info;
  impl_->uncommitted = true;
  return info.id;
}

void Store::append_tasks(std::int64_t run, std::span<const TaskKey> keys) {
  impl_->require_writer("append tasks");
  auto it = impl_->runs.find(run);
  if (it == impl_->runs.end())
    throw UsageError("no run " + std::to_string(run) + " in store " + impl_->path.string());
  if (keys.empty()) return;
  impl_->log->add([&](std::string& out) { detail::encode_tasks(out, run, keys); });
  impl_->mem().add_tasks(run, keys);
  it->second.task_count += static_cast<std::int64_t>(keys.size());
  // The count travels with the run's metadata at end_run and in every table.
  impl_->uncommitted = true;
}

void Store::update_run(std::int64_t run, const RunCounts& counts) {
  impl_->require_writer("update a run");
  auto it = impl_->runs.find(run);
  if (it == impl_->runs.end())
    throw UsageError("no run " + std::to_string(run) + " in store " + impl_->path.string());
  it->second.counts = counts;
  impl_->log->add([&](std::string& out) { detail::encode_run(out, it->second); });
  impl_->uncommitted = true;
}

void Store::end_run(std::int64_t run, RunState state, std::int32_t exit_status) {
  impl_->require_writer("end a run");
  if (state == RunState::running) throw UsageError("end_run: state must not be running");
  auto it = impl_->runs.find(run);
  if (it == impl_->runs.end())
    throw UsageError("no run " + std::to_string(run) + " in store " + impl_->path.string());
  RunInfo& r = it->second;
  r.state = state;
  r.exit_status = exit_status;
  r.end_time = static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count()) /
               1e6;
  impl_->log->add([&](std::string& out) { detail::encode_run(out, r); });
  impl_->uncommitted = true;
}

std::vector<RunInfo> Store::runs() const {
  return impl_->run_list();
}

void Store::append(const RecordBatch& batch) {
  impl_->append_columns(batch, {});
}

void Store::append(const RecordBatch& batch, std::span<const Claim> claims) {
  impl_->append_columns(batch, claims);
}

void Store::claim(std::span<const TaskKey> keys, std::span<Lookup> out, std::span<Claim> claims,
                  bool claim_failed) {
  impl_->claim(keys, out, claims, claim_failed);
}

void Store::release_claims() {
  impl_->release_claims();
}

void Store::append(std::span<const Record> records) {
  impl_->append_batch(records);
}

void Store::append(std::vector<Record>&& records) {
  impl_->append_batch(records);
  records.clear();
}

void Store::commit() {
  impl_->commit();
}

void Store::reserve(std::size_t keys) {
  impl_->index.reserve(keys);
}

bool Store::commit_due() const {
  return impl_->writer() && impl_->mem().size() >= impl_->opt.segment_records;
}

void Store::lookup(std::span<const TaskKey> keys, std::span<Lookup> out) const {
  impl_->require_records("look keys up");
  if (out.size() != keys.size()) throw UsageError("lookup: output size differs from key count");
  const auto& index = impl_->index;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i + kPrefetch < keys.size()) detail::prefetch(index, keys[i + kPrefetch]);
    const auto it = index.find(keys[i]);
    const Loc* loc = it == index.end() ? nullptr : impl_->visible(it->second);
    out[i] = loc == nullptr ? Lookup::missing : loc->failed() ? Lookup::failed : Lookup::ok;
  }
}

std::optional<Record> Store::get(const TaskKey& key) const {
  impl_->require_records("get a record");
  const auto it = impl_->index.find(key);
  const Loc* loc = it == impl_->index.end() ? nullptr : impl_->visible(it->second);
  if (loc == nullptr) return std::nullopt;
  return std::move(impl_->fetch({*loc}).front());
}

std::size_t Store::size() const {
  impl_->require_records("count records");
  return impl_->index.size() - impl_->phantoms;
}

void Store::for_each(const std::function<void(const Record&)>& fn) const {
  impl_->require_records("read records");
  const auto all = impl_->stored_in_order();
  std::vector<Loc> locs;
  for (std::size_t i = 0; i < all.size(); i += kFetchChunk) {
    locs.clear();
    for (std::size_t j = i; j < std::min(all.size(), i + kFetchChunk); ++j)
      locs.push_back(all[j].second);
    for (const Record& r : impl_->fetch(locs)) fn(r);
  }
}

void Store::for_each_task(std::int64_t run,
                          const std::function<void(const TaskKey&, const Record*)>& fn) const {
  impl_->require_records("read a run's tasks");
  if (!impl_->runs.count(run))
    throw UsageError("no run " + std::to_string(run) + " in store " + impl_->path.string());
  auto emit = [&](const std::vector<TaskKey>& keys) {
    for (std::size_t i = 0; i < keys.size(); i += kFetchChunk) {
      const std::size_t end = std::min(keys.size(), i + kFetchChunk);
      std::vector<Loc> locs;
      std::vector<std::size_t> where(end - i, SIZE_MAX);
      for (std::size_t j = i; j < end; ++j) {
        const auto it = impl_->index.find(keys[j]);
        const Loc* loc = it == impl_->index.end() ? nullptr : impl_->visible(it->second);
        if (loc != nullptr) {
          where[j - i] = locs.size();
          locs.push_back(*loc);
        }
      }
      const auto recs = impl_->fetch(locs);
      for (std::size_t j = i; j < end; ++j) {
        fn(keys[j], where[j - i] == SIZE_MAX ? nullptr : &recs[where[j - i]]);
      }
    }
  };
  std::vector<TaskKey> keys;
  for (const auto& t : impl_->tables) {
    keys.clear();
    t->read_tasks(run, keys);
    emit(keys);
  }
  // Memtables: a frozen one (being flushed) holds earlier tasks than the active one.
  const Impl& s = *impl_;
  for (unsigned slot : {1 - s.active, s.active}) {
    if (auto it = s.mems[slot].tasks.find(run); it != s.mems[slot].tasks.end()) emit(it->second);
  }
}

void Store::compact() {
  Impl& s = *impl_;
  s.require_writer("compact");
  s.commit();
  s.flush_now();
  if (s.tables.size() <= 1) return;  // already one table
  rewrite(nullptr);
}

std::uint64_t Store::erase_if(const std::function<bool(const Record&)>& drop) {
  impl_->require_writer("erase records");
  return rewrite(&drop);
}

// Writes everything, less what drop says, into a new base file (fsync'd and
// renamed over the old one), then lets the segments and logs go.
std::uint64_t Store::rewrite(const std::function<bool(const Record&)>* drop) {
  Impl& s = *impl_;
  if (!s.problems.empty()) {
    throw StoreCorruptError("store " + s.path.string() +
                            " is damaged; refusing to compact (would drop " +
                            s.problems.front().file + ")");
  }
  s.release_claims();
  s.commit();
  s.flush_now();
  std::uint64_t dropped = 0;
  const std::int64_t through = s.tables.back()->through_seq();
  const std::string base_name = Impl::new_base_name(through);
  {
    detail::TableWriter w(s.dir / (base_name + ".tmp"), through);
    w.add_jobs(s.jobs);
    // Live locations per job version, in storage order: the new base keeps
    // the order records were stored in (oldest first).
    std::map<std::pair<std::string, std::int64_t>, std::vector<Loc>> per_job;
    for (const auto& [p, loc] : s.stored_in_order()) {
      const auto& job = s.tables[p.table]->groups()[p.group].job;
      per_job[{job.name, job.version}].push_back(loc);
    }
    for (auto& [job, entries] : per_job) {
      if (entries.size() > kMaxRows) throw StoreError("too many records for one job version");
      std::vector<Loc> locs;
      for (std::size_t i = 0; i < entries.size(); i += kFetchChunk) {
        locs.clear();
        for (std::size_t j = i; j < std::min(entries.size(), i + kFetchChunk); ++j)
          locs.push_back(entries[j]);
        const auto recs = s.fetch(locs);
        std::vector<const Record*> ptrs;
        for (const auto& r : recs) {
          if (drop != nullptr && (*drop)(r)) {
            ++dropped;
          } else {
            ptrs.push_back(&r);
          }
        }
        w.append(job.first, job.second, ptrs);
      }
    }
    std::vector<TaskKey> keys;
    for (const auto& [id, run] : s.runs) {
      for (const auto& t : s.tables) {
        keys.clear();
        t->read_tasks(id, keys);
        w.append_tasks(id, keys);
      }
    }
    w.set_runs(s.run_list());
    w.finish(s.dir / base_name);
  }
  // The new base holds everything: drop the rest and index the base again.
  s.tables.clear();
  s.remaps.clear();
  s.index.clear();
  s.phantoms = 0;
  s.base_file = base_name;
  s.tables.push_back(std::make_unique<TableReader>(s.base_path()));
  s.remaps.resize(1);
  s.mem_table = {kNoTable, kNoTable};
  s.mem_table[s.active] = 1;  // both memtables are empty (flushed above)
  std::size_t rows = 0;
  for (const auto& g : s.tables[0]->groups()) rows += g.rows;
  s.index.reserve(rows);
  s.base_seq = through;
  s.segments.clear();
  s.save_manifest();
  s.index_table(0);
  s.write_view();
  s.remove_obsolete();
  detail::fsync_dir(s.dir);
  return dropped;
}

void Store::close_merging() {
  Impl& s = *impl_;
  if (s.closed) return;
  s.require_writer("merge");
  try {
    s.release_claims();
    s.commit();
    s.flush_now();
    if (s.problems.empty() && s.tables.size() > 1 &&
        s.tables.front()->path() == s.base_path()) {
      // An empty base never joins: the oldest segment takes its place below.
      const std::size_t lowest = Impl::rows_of(*s.tables.front()) == 0 ? 1 : 0;
      std::vector<bool> fresh(s.tables.size(), false);  // merged here: every row live
      for (bool first_merge = true;; first_merge = false) {
        const std::size_t first = s.merge_start(lowest);
        if (first >= s.tables.size()) break;
        if (first == 0) {  // the base joins: a compaction, while the index is current
          if (first_merge) rewrite(nullptr);
          break;
        }
        s.merge_range(first, fresh);
      }
      if (Impl::rows_of(*s.tables.front()) == 0 && s.tables.size() > 1) s.promote_first_segment();
    }
  } catch (...) {
    close();
    throw;
  }
  close();
}

void Store::close() {
  Impl& s = *impl_;
  if (s.closed) return;
  if (s.writer()) {
    s.release_claims();
    s.commit();
    s.flush_now();
    // Leave no empty log behind.
    const fs::path current = s.log->path();
    s.log.reset();
    std::error_code ec;
    fs::remove(current, ec);
    s.lock.release();
  }
  s.closed = true;
}

}  // namespace mpibatch
