// Store::Impl: opening a store: loading, recovery, the sidecar's files.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "core/prefetch.hpp"
#include "store/file_util.hpp"
#include "store/frame_codec.hpp"
#include "store/store_impl.hpp"

namespace mpibatch {

using namespace detail;

void Store::Impl::add_job(const JobInfo& job) {
  for (auto& j : jobs) {
    if (j.name == job.name && j.version == job.version) {
      // A table or log of a narrower (older) definition, or a widened one.
      if (const std::string why = detail::widen(j, job); !why.empty()) {
        problems.push_back({path.string(), "job " + job.name + " v" + std::to_string(job.version) +
                                               " is defined twice, with " + why});
      }
      return;
    }
  }
  jobs.push_back(job);
}

void Store::Impl::apply_frame(std::string_view payload, std::uint64_t format,
                              const fs::path& file) {
  unflushed = true;
  detail::Decoder d(payload.substr(1));
  switch (static_cast<detail::FrameType>(payload[0])) {
    case detail::FrameType::job: {
      std::uint32_t id = 0;
      JobInfo job = detail::decode_job(d, id);
      // A log numbers its jobs 0, 1, ... as it defines them (log_job_id).
      if (id > replay_jobs.size())
        throw StoreCorruptError("job id " + std::to_string(id) + " defined out of sequence");
      if (replay_jobs.size() <= id) replay_jobs.resize(id + 1);
      replay_jobs[id] = job.id();
      add_job(job);
      break;
    }
    case detail::FrameType::records:
      if (opt.metadata_only) break;
      detail::decode_records(d, format, [&](std::uint32_t id, Record&& r) {
        if (id >= replay_jobs.size() || replay_jobs[id].name.empty()) {
          throw StoreCorruptError("record of job id " + std::to_string(id) +
                                  ", which the log does not define");
        }
        r.job = replay_jobs[id].name;
        r.job_version = replay_jobs[id].version;
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

void Store::Impl::open_key_indexes() {
  std::vector<bool> sound(tables.size(), true);
  for (std::size_t t = 0; t < tables.size(); ++t) {
    try {
      tables[t]->key_index();
    } catch (const Error& e) {
      sound[t] = false;
      problems.push_back({tables[t]->path().string(), e.what()});
    }
  }
  // Tables from before there was a key index in the file carry no replacing
  // keys: look for them here, once an open (such a store's next merge writes them).
  for (std::size_t t = 1; t < tables.size(); ++t) {
    if (!sound[t] || std::find(sound.begin(), sound.begin() + t, false) != sound.begin() + t)
      continue;
    const detail::KeyIndex& x = tables[t]->key_index();
    if (x.in_file()) continue;
    std::vector<TaskKey> replacing;
    for (const TaskKey& key : x.keys())
      if (in_tables(key, t)) replacing.push_back(key);
    tables[t]->set_replacing(std::move(replacing));
  }
  for (std::size_t t = 0; t < tables.size(); ++t)
    if (sound[t])
      for (const TaskKey& key : tables[t]->key_index().replacing()) replaced_keys.insert(key);
}

void Store::Impl::read_metadata(const TableReader& tr) {
  for (const auto& g : tr.groups()) add_job(g.job);
  for (const auto& r : tr.runs()) runs[r.id] = r;
}

Manifest Store::Impl::manifest_now() {
  Manifest m{base_seq, base_file, segments, {}};
  auto add = [&](const std::string& name) {
    auto it = stamps.find(name);
    if (it == stamps.end()) it = stamps.emplace(name, detail::stamp_file(dir / name)).first;
    m.stamps.insert(*it);
  };
  add(base_file);
  for (const auto seq : segments) add(seq_name(seq, ".h5"));
  stamps = m.stamps;
  m.views = view_stamps;
  m.logs = replayed_logs;
  if (log) m.logs[parse_seq(log->path().filename().string(), ".log")] = 0;
  return m;
}

void Store::Impl::open_sidecar() {
  if (side) return;
  const std::string name = dir.string();
  const int fd = ::open(name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return;  // none yet
  struct stat st {};
  // O_DIRECTORY | O_NOFOLLOW fails on a link with ENOTDIR or ELOOP: lstat tells which.
  if (fd < 0 && (errno == ELOOP || errno == ENOTDIR) && ::lstat(name.c_str(), &st) == 0 &&
      S_ISLNK(st.st_mode))
    throw NotAStoreError(name +
                         ": a symbolic link; a store's sidecar must be a real folder "
                         "(mpibatch never follows a link there)");
  if (fd < 0 && errno == ENOTDIR)
    throw NotAStoreError(name + ": not a folder, so not a store's sidecar");
  if (fd < 0) detail::throw_errno("open", name);
  detail::Fd owned(fd);
  if (::fstat(fd, &st) != 0) detail::throw_errno("fstat", name);
  if (writer() && st.st_uid != ::geteuid())
    throw NotAStoreError(name + ": owned by uid " + std::to_string(st.st_uid) +
                         ", not by you; mpibatch writes only a sidecar of your own");
  if (writer() && (st.st_mode & S_IWOTH) != 0) {  // a group may share it, the world not
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", st.st_mode & 0777);
    throw NotAStoreError(name + ": anyone may write in it (mode " + mode +
                         "); run chmod o-w on it first");
  }
  side = detail::Dir(std::move(owned), dir);
  dir = side.anchor();
}

std::string Store::Impl::check_table(const fs::path& file) const {
  const auto it = stamps.find(file.filename().string());
  if (it == stamps.end()) return {};  // listed by an older MANIFEST, which had no stamps
  try {
    return detail::check_stamp(file, it->second, opt.check_digests);
  } catch (const IoError& e) {
    return e.what();
  }
}

std::string Store::Impl::new_base_name(std::int64_t seq) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  return "base-" + seq_name(seq, "") + "-" + std::to_string(ns) + ".h5";
}

void Store::Impl::migrate() {
  const std::string name = new_base_name(base_seq);
  const fs::path target = dir / name;
  detail::link_or_copy(path, target);
  base_file = name;
  tables.front() = std::make_unique<TableReader>(target);
  save_manifest();
}

bool Store::Impl::load(bool last_attempt) {
  tables.clear();
  remaps.clear();
  index.clear();
  probe_end = 0;
  probe_rows = 0;
  replaced_keys.clear();
  hint_table = SIZE_MAX;
  claims.clear();
  free_claims.clear();
  for (auto& m : mems) m.clear();
  active = 0;
  mem_table = {kNoTable, kNoTable};
  jobs.clear();
  runs.clear();
  covered_logs.clear();
  replayed_logs.clear();
  problems.clear();
  segments.clear();
  unflushed = false;

  const std::optional<Manifest> manifest = read_manifest(manifest_path());
  base_file = manifest ? manifest->base_file : std::string();
  stamps = manifest ? manifest->stamps : std::map<std::string, detail::FileStamp>{};
  view_stamps = manifest ? manifest->views : std::vector<detail::FileStamp>{};
  std::unique_ptr<TableReader> base;
  try {
    // A damaged file never reaches HDF5, which may crash on one.
    if (const std::string why = manifest ? check_table(base_path()) : ""; !why.empty())
      throw StoreCorruptError(why);
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
  const std::vector<std::int64_t> listed =
      manifest ? manifest->segments : std::vector<std::int64_t>{};
  for (const auto seq : listed) {
    if (seq <= base_seq) continue;
    segments.push_back(seq);
    covered = seq;
    // Every table holds every job and run as of its writing: the newest
    // one (and the logs after it) is all that metadata takes.
    if (opt.metadata_only && seq != listed.back()) continue;
    const fs::path p = dir / seq_name(seq, ".h5");
    if (!fs::exists(p, ec) && !last_attempt) return false;
    if (tables.size() >= kMaxTables)
      throw StoreError(path.string() + ": too many segments; compact it");
    try {
      if (const std::string why = check_table(p); !why.empty()) throw StoreCorruptError(why);
      tables.push_back(std::make_unique<TableReader>(p));
    } catch (const StoreVersionError&) {
      throw;
    } catch (const Error& e) {
      problems.push_back(
          {p.string(), fs::exists(p, ec) ? e.what() : "segment listed in MANIFEST is missing"});
    }
  }
  last_seq = std::max(last_seq, covered);
  // A writer adds about a segment's worth before its next table: room for
  // it up front saves the index's early rehashes (address space only).
  const std::size_t room = writer() ? std::min<std::size_t>(opt.segment_records, kReserveMax) : 0;
  if (!opt.metadata_only) index.reserve(room);
  for (auto& m : mems) m.entries.reserve(room);
  for (const auto& t : tables) read_metadata(*t);
  probe_end = tables.size();
  for (const auto& t : tables) probe_rows += rows_of(*t);
  if (!opt.metadata_only) open_key_indexes();
  remaps.resize(tables.size());
  mem_table[active] = static_cast<std::uint32_t>(tables.size());
  // A log the MANIFEST lists that no table covers must be there, at least
  // as long as it was when listed (a torn tail past that is a crash's).
  std::map<std::int64_t, std::uint64_t> listed_logs =
      manifest ? manifest->logs : decltype(listed_logs){};
  for (const auto& [seq, length] : listed_logs) {
    const bool there = std::any_of(logs.begin(), logs.end(),
                                   [seq = seq](const auto& l) { return l.first == seq; });
    if (seq <= covered || there) continue;
    if (!last_attempt) return false;  // a flush may have covered and removed it: read again
    problems.push_back({(dir / seq_name(seq, ".log")).string(),
                        "log listed in MANIFEST is missing: its committed records are lost"});
  }
  for (const auto& [seq, p] : logs) {
    if (seq <= covered) continue;
    try {
      replay_jobs.clear();
      const std::uint64_t committed = detail::replay_log(
          p, [&, &p = p](std::string_view f, std::uint64_t format) { apply_frame(f, format, p); },
          problems);
      if (const auto it = listed_logs.find(seq); it != listed_logs.end() && committed < it->second)
        problems.push_back({p.string(), "holds " + std::to_string(committed) +
                                            " committed bytes, the MANIFEST recorded " +
                                            std::to_string(it->second) +
                                            ": truncated, committed records lost"});
      replayed_logs[seq] = committed;
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

void Store::Impl::remove_obsolete() {
  const std::int64_t newest = segments.empty() ? base_seq : segments.back();
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const auto seg = parse_seq(name, ".h5");
    const auto lg = parse_seq(name, ".log");
    const bool listed = std::find(segments.begin(), segments.end(), seg) != segments.end();
    const bool old_base = name.starts_with("base-") && name != base_file;
    const bool obsolete =
        (seg >= 0 && !listed) || (lg >= 0 && lg <= newest) || name.ends_with(".tmp") || old_base;
    if (obsolete) fs::remove(entry.path(), ec);
  }
}

void Store::Impl::trim_logs() {
  if (!problems.empty()) return;  // damage stays as it was found, for verify
  for (const auto& [seq, committed] : replayed_logs) {
    const fs::path p = dir / seq_name(seq, ".log");
    std::error_code ec;
    const std::uintmax_t size = fs::file_size(p, ec);
    if (ec || committed == 0 || size <= committed) continue;
    if (::truncate(p.c_str(), static_cast<off_t>(committed)) == 0) detail::fsync_path(p);
  }
}

void Store::Impl::start_log() {
  ++last_seq;
  log = std::make_unique<detail::LogWriter>(dir / seq_name(last_seq, ".log"));
  log_job_ids.clear();
}

std::uint32_t Store::Impl::log_job_id(const JobInfo& job, bool again) {
  auto [it, added] =
      log_job_ids.try_emplace(job.id(), static_cast<std::uint32_t>(log_job_ids.size()));
  if (added || again) {
    log->add([&, it = it](std::string& out) { detail::encode_job(out, it->second, job); });
  }
  return it->second;
}

}  // namespace mpibatch
