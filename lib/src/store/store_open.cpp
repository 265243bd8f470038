// Store::Impl: opening a store: loading, recovery, the sidecar's files.
#include <unistd.h>

#include <algorithm>
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

void Store::Impl::save_manifest() {
  write_manifest(manifest_path(), Manifest{base_seq, base_file, segments});
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

void Store::Impl::start_log() {
  ++last_seq;
  log = std::make_unique<detail::LogWriter>(dir / seq_name(last_seq, ".log"));
  log_job_ids.clear();
}

std::uint32_t Store::Impl::log_job_id(const JobInfo& job, bool again) {
  auto [it, added] =
      log_job_ids.try_emplace(job.id(), static_cast<std::uint32_t>(log_job_ids.size()));
  if (added || again) {
    log->add([&](std::string& out) { detail::encode_job(out, it->second, job); });
  }
  return it->second;
}

}  // namespace mpibatch
