// Store::Impl: merging tables and the view over them.
#include <algorithm>

#include "store/file_util.hpp"
#include "store/store_impl.hpp"

namespace mpibatch {

using namespace detail;

hsize_t Store::Impl::rows_of(const TableReader& t) {
  hsize_t n = 0;
  for (const auto& g : t.groups()) n += g.rows;
  return n;
}

bool Store::Impl::holds_nothing(const TableReader& t) {
  if (rows_of(t) > 0) return false;
  for (const auto& [run, rows] : t.task_rows())
    if (rows > 0) return false;
  return true;
}

std::size_t Store::Impl::oldest_with_replaced_rows() const {
  hsize_t rows = 0;
  for (const auto& t : tables) rows += rows_of(*t);
  if (rows == index.size() - phantoms) return tables.size();  // the usual case: none
  std::vector<hsize_t> live(tables.size(), 0);
  for (const auto& [key, value] : index) {
    if (const Loc* loc = visible(value)) {
      const Place p = place(*loc);
      if (p.mem < 0) ++live[p.table];
    }
  }
  for (std::size_t t = 0; t < tables.size(); ++t)
    if (live[t] < rows_of(*tables[t])) return t;
  return tables.size();
}

std::size_t Store::Impl::merge_start(std::size_t lowest) const {
  if (tables.size() <= kCalmTables || tables.size() < lowest + 4) return tables.size();
  std::size_t first = tables.size() - 1;
  hsize_t taken = rows_of(*tables[first]);
  while (first > lowest && rows_of(*tables[first - 1]) <= 2 * std::max<hsize_t>(taken, 1)) {
    --first;
    taken += rows_of(*tables[first]);
  }
  return tables.size() - first >= 4 ? first : tables.size();
}

void Store::Impl::merge_range(std::size_t first, std::vector<bool>& fresh) {
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
            // A table number past the tables: one an earlier merge here replaced.
            if (loc != nullptr && loc->table() < remaps.size()) {
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

void Store::Impl::promote_first_segment() {
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

std::vector<detail::ViewSource> Store::Impl::view_sources() const {
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
    if (s.problems.empty() && s.tables.size() > 1 && s.tables.front()->path() == s.base_path()) {
      const bool empty_base = Impl::holds_nothing(*s.tables.front());
      std::vector<bool> fresh(s.tables.size(), false);  // merged here: every row live
      // Rows a newer record replaced (a retried failure) go first, so that the
      // view shows one row a key; from the oldest such table on, all is merged.
      const std::size_t dead = s.oldest_with_replaced_rows();
      if (dead == 0) {
        rewrite(nullptr);
      } else if (dead < s.tables.size()) {
        s.merge_range(dead, fresh);
      } else {
        // An empty base never joins: the oldest segment takes its place below.
        const std::size_t lowest = empty_base ? 1 : 0;
        for (bool first_merge = true;; first_merge = false) {
          const std::size_t first = s.merge_start(lowest);
          if (first >= s.tables.size()) break;
          if (first == 0) {  // the base joins: a compaction, while the index is current
            if (first_merge) rewrite(nullptr);
            break;
          }
          s.merge_range(first, fresh);
        }
      }
      if (Impl::holds_nothing(*s.tables.front()) && s.tables.size() > 1) s.promote_first_segment();
    }
  } catch (...) {
    s.index_stale = true;
    close();
    throw;
  }
  s.index_stale = true;  // merges above did not update it
  close();
}

}  // namespace mpibatch
