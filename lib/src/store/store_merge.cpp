// Store::Impl: merging tables and the view over them.
#include <absl/container/flat_hash_set.h>

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
  std::size_t oldest = tables.size();
  for (const auto& [tg, rows] : dead_rows(nullptr))
    if (!rows.empty()) oldest = std::min<std::size_t>(oldest, tg.first);
  return oldest;
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

void Store::Impl::narrow_like(detail::TableWriter& w, std::size_t first) const {
  bool rank16 = true, run16 = true;
  for (std::size_t t = first; t < tables.size(); ++t) {
    for (std::size_t g = 0; g < tables[t]->groups().size(); ++g) {
      const auto [rank, run] = tables[t]->narrow_columns(g);
      rank16 = rank16 && rank;
      run16 = run16 && run;
    }
  }
  w.narrow(rank16, run16);
}

void Store::Impl::merge_range(std::size_t first) {
  const std::int64_t seq = ++last_seq;  // above every file: keeps the MANIFEST's order
  const std::string name = seq_name(seq, ".h5");
  {
    detail::TableWriter w(dir / (name + ".tmp"), seq, opt.compress);
    narrow_like(w, first);
    w.add_jobs(jobs);
    const DeadRows dead = dead_rows(nullptr);
    for (std::size_t t = first; t < tables.size(); ++t) {
      const TableReader& tr = *tables[t];
      for (std::size_t g = 0; g < tr.groups().size(); ++g) {
        const JobInfo& job = tr.groups()[g].job;
        live_rows(dead, t, g, [&](const std::vector<Record>& records) {
          std::vector<const Record*> ptrs;
          for (const auto& r : records) ptrs.push_back(&r);
          w.append(job.name, job.version, ptrs);
        });
      }
    }
    // The merged table replaces what its inputs replaced in older tables.
    absl::flat_hash_set<TaskKey, TaskKeyHash> replacing;
    for (std::size_t t = first; t < tables.size(); ++t)
      for (const TaskKey& key : tables[t]->key_index().replacing())
        if (in_tables(key, first)) replacing.insert(key);
    w.set_replacing({replacing.begin(), replacing.end()});
    std::vector<TaskKey> keys;
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
  tables.push_back(std::make_unique<TableReader>(dir / name));
  remaps.push_back(nullptr);
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

void Store::Impl::write_view() {
  detail::write_view(path, view_sources(), jobs, run_list(), [this](const fs::path& tmp) {
    const detail::FileStamp next = detail::stamp_file(tmp);
    view_stamps.push_back(next);
    save_manifest();
    view_stamps = {next};
  });
}

std::vector<detail::ViewSource> Store::Impl::view_sources() const {
  std::vector<detail::ViewSource> sources;
  const std::string folder = sidecar(path).filename().string();
  for (const auto& t : tables) {
    detail::ViewSource src;
    src.file = folder + "/" + t->path().filename().string();
    for (const auto& g : t->groups()) {
      src.rows[g.job.id()] = g.rows;
      if (!g.has_error) src.no_errors.insert(g.job.id());
      auto& fields = src.fields[g.job.id()];
      for (const Field& f : g.job.params) fields.insert("params/" + f.name);
      for (const Field& f : g.job.results) fields.insert("results/" + f.name);
    }
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
  if (s.tables.size() <= 1 && s.opt.compress == 0) return;  // already one table
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
    detail::TableWriter w(s.dir / (base_name + ".tmp"), through, s.opt.compress);
    s.narrow_like(w, 0);
    w.add_jobs(s.jobs);
    // Per job version, the live rows in storage order: the new base keeps
    // the order records were stored in (oldest first). Memtables are empty.
    const Impl::DeadRows dead = s.dead_rows(nullptr);
    for (const JobInfo& job : s.jobs) {
      for (std::size_t t = 0; t < s.tables.size(); ++t) {
        const TableReader& tr = *s.tables[t];
        for (std::size_t g = 0; g < tr.groups().size(); ++g) {
          if (tr.groups()[g].job.name != job.name || tr.groups()[g].job.version != job.version)
            continue;
          s.live_rows(dead, t, g, [&](const std::vector<Record>& recs) {
            std::vector<const Record*> ptrs;
            for (const auto& r : recs) {
              if (drop != nullptr && (*drop)(r)) {
                ++dropped;
              } else {
                ptrs.push_back(&r);
              }
            }
            w.append(job.name, job.version, ptrs);
          });
        }
      }
    }
    std::vector<TaskKey> keys;
    for (const auto& [id, run] : s.runs) {
      for (const auto& t : s.tables) {
        keys.clear();
        t->read_tasks(id, keys);
        if (!keys.empty()) w.append_tasks(id, keys);
      }
    }
    w.set_runs(s.run_list());
    w.finish(s.dir / base_name);
  }
  // The new base holds everything: drop the rest and index the base again.
  s.tables.clear();
  s.remaps.clear();
  s.index.clear();
  s.base_file = base_name;
  s.tables.push_back(std::make_unique<TableReader>(s.base_path()));
  s.remaps.resize(1);
  s.probe_end = 1;
  s.probe_rows = Impl::rows_of(*s.tables[0]);
  s.replaced_keys.clear();
  s.hint_table = SIZE_MAX;
  s.mem_table = {kNoTable, kNoTable};
  s.mem_table[s.active] = 1;  // both memtables are empty (flushed above)
  s.base_seq = through;
  s.segments.clear();
  s.save_manifest();
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
    // Merging reads the tables' own indexes: the memory of the writer's
    // (a slot for every key it appended) goes before a merge takes its own.
    s.index_stale = true;
    decltype(s.index)().swap(s.index);
    if (s.problems.empty() && s.tables.size() > 1 && s.tables.front()->path() == s.base_path()) {
      const bool empty_base = Impl::holds_nothing(*s.tables.front());
      // Rows a newer record replaced (a retried failure) go first, so that the
      // view shows one row a key; from the oldest such table on, all is merged.
      const std::size_t dead = s.oldest_with_replaced_rows();
      if (dead == 0) {
        rewrite(nullptr);
      } else if (dead < s.tables.size()) {
        s.merge_range(dead);
      } else {
        // An empty base never joins: the oldest segment takes its place below.
        const std::size_t lowest = empty_base ? 1 : 0;
        for (bool first_merge = true;; first_merge = false) {
          const std::size_t first = s.merge_start(lowest);
          if (first >= s.tables.size()) break;
          if (first == 0) {  // the base joins: a compaction
            if (first_merge) rewrite(nullptr);
            break;
          }
          s.merge_range(first);
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
