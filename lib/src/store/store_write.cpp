// Store::Impl: appends, commits and segment flushes.
#include <algorithm>

#include "core/prefetch.hpp"
#include "core/value_types.hpp"
#include "store/file_util.hpp"
#include "store/frame_codec.hpp"
#include "store/row_columns.hpp"
#include "store/store_impl.hpp"

namespace mpibatch {

using namespace detail;

namespace {}  // namespace

const JobInfo& Store::Impl::job_of(const std::string& name, std::int64_t version) const {
  for (const auto& j : jobs)
    if (j.name == name && j.version == version) return j;
  throw UsageError("record for job " + name + " v" + std::to_string(version) +
                   ", which is not defined in store " + path.string());
}

void Store::Impl::check_record(const Record& r, const JobInfo& job) const {
  std::string why = misfit(job.params, r.params, "param");
  // A failed record's values are optional: those its task failed with.
  if (why.empty() && (r.status != Status::failed || !r.values.empty()))
    why = misfit(job.results, r.values, "result");
  if (!why.empty()) throw UsageError("record of job " + r.job + ": " + why);
}

std::vector<RunInfo> Store::Impl::run_list() const {
  std::vector<RunInfo> out;
  for (const auto& [id, r] : runs) out.push_back(r);
  return out;
}

void Store::Impl::start_flush() {
  if (tables.size() + 2 >= kMaxTables)
    throw StoreError(path.string() + ": too many segments; compact it");
  auto f = std::make_unique<Flush>();
  f->slot = active;
  f->seq = last_seq;  // the current log's number
  std::vector<fs::path> logs = covered_logs;
  logs.push_back(log->path());
  covered_logs.clear();
  replayed_logs.clear();
  log.reset();
  active = 1 - active;
  mem_table[active] = static_cast<std::uint32_t>(tables.size() + 1);  // after the frozen one
  start_log();
  unflushed = false;

  const detail::MemTable* frozen = &mems[f->slot];
  Manifest manifest = manifest_now();
  manifest.segments.push_back(f->seq);
  f->done = std::async(std::launch::async, [this, f = f.get(), frozen, manifest, jobs_copy = jobs,
                                            runs_copy = run_list(), logs]() mutable {
    detail::h5::quiet_this_thread();
    f->live = frozen->live();
    f->remap = std::make_unique<Remap>();
    f->remap->pos.assign(frozen->entries.size(), Remap::kGone);
    std::uint32_t pos = 0;
    bool identity = true;
    for (const auto& [job, live] : f->live) {
      f->remap->first.push_back(pos);
      for (const auto& r : live) {
        identity = identity && r.row == pos;
        f->remap->pos[r.row] = pos++;
      }
    }
    // The usual segment: a run's records, none superseded. Its remap would
    // keep 4 bytes a record for as long as the writer runs.
    if (identity && pos == frozen->entries.size()) std::vector<std::uint32_t>().swap(f->remap->pos);
    const std::string name = seq_name(f->seq, ".h5");
    detail::TableWriter w(dir / (name + ".tmp"), f->seq, opt.compress);
    w.narrow(!frozen->wide_rank, !frozen->wide_run);
    w.add_jobs(jobs_copy);
    // The key index is sorted on a thread of its own while the columns are
    // written: at a run's end this flush is what everyone waits for.
    detail::KeyIndexWriter keys_index(opt.compress == 0);
    keys_index.reserve(pos);
    w.use_index(&keys_index);
    auto index_done = std::async(std::launch::async, [&] {
      std::vector<std::uint64_t> group_rows(jobs_copy.size(), 0);
      for (const auto& [job, live] : f->live) {
        const auto g = static_cast<std::uint32_t>(std::find_if(jobs_copy.begin(), jobs_copy.end(),
                                                               [&job = job](const auto& j) {
                                                                 return j.name == job.name &&
                                                                        j.version == job.version;
                                                               }) -
                                                  jobs_copy.begin());
        if (g == jobs_copy.size()) throw StoreError("memtable record of an unknown job");
        group_rows[g] = live.size();
        for (std::size_t r = 0; r < live.size(); ++r) {
          const auto& e = frozen->entries[live[r].row];
          keys_index.add(g, static_cast<std::uint32_t>(r), e.key, e.failed);
        }
      }
      keys_index.prepare(group_rows);
    });
    struct Join {  // the thread uses this frame: it ends before the frame does
      std::future<void>& f;
      ~Join() {
        if (f.valid()) f.wait();
      }
    } join{index_done};
    // Decoded a chunk at a time straight into columns, reused from chunk to chunk.
    detail::RowColumns rows;
    for (const auto& [job, live] : f->live) {
      if (live.size() > kMaxRows) throw StoreError("segment too large");
      const auto info = std::find_if(
          jobs_copy.begin(), jobs_copy.end(),
          [&job = job](const auto& j) { return j.name == job.name && j.version == job.version; });
      if (info == jobs_copy.end()) throw StoreError("memtable record of an unknown job");
      for (std::size_t at = 0; at < live.size(); at += kFetchChunk) {
        const std::size_t end = std::min(live.size(), at + kFetchChunk);
        rows.reset(*info);
        for (std::size_t j = at; j < end; ++j) {
          frozen->read_row(live[j].offset, live[j].size, rows);
        }
        w.append(job.name, job.version, rows);
      }
    }
    for (const auto& [run, keys] : frozen->tasks)
      if (!keys.empty()) w.append_tasks(run, keys);
    w.set_runs(runs_copy);
    w.set_replacing(frozen->replacing);
    index_done.get();
    w.finish(dir / name);
    f->stamp = detail::stamp_file(dir / name);
    manifest.stamps[name] = f->stamp;
    write_manifest(manifest_path(), manifest);
    std::error_code ec;
    for (const auto& p : logs) fs::remove(p, ec);
    detail::fsync_dir(dir);
  });
  pending = std::move(f);
}

void Store::Impl::finish_flush() {
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
  stamps[seq_name(f->seq, ".h5")] = f->stamp;
  if (tables.size() != mem_table[f->slot]) fail("internal error: segment number out of order");
  auto table = std::make_unique<TableReader>(dir / seq_name(f->seq, ".h5"));
  // The memtable's k-th job (in live's order) is the table's group of that job.
  const auto& groups = table->groups();
  for (const auto& [job, live] : f->live) {
    const auto g = std::find_if(groups.begin(), groups.end(), [&job = job](const auto& grp) {
      return grp.job.name == job.name && grp.job.version == job.version;
    });
    if (g == groups.end()) fail(table->path().string() + " lacks job " + job.name);
    f->remap->group.push_back(static_cast<std::uint32_t>(g - groups.begin()));
  }
  tables.push_back(std::move(table));
  remaps.push_back(std::move(f->remap));
  mems[f->slot].clear();
  mem_table[f->slot] = kNoTable;
  write_view();
}

void Store::Impl::flush_now() {
  finish_flush();
  if (unflushed) {
    start_flush();
    finish_flush();
  }
}

void Store::Impl::commit() {
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

void Store::Impl::append_batch(std::span<const Record> records) {
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
    m.note(r.rank, r.run);
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

void Store::Impl::append_columns(const RecordBatch& b, std::span<const Claim> ids) {
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
    if (std::string why = misfit(fields, cols, kind); !why.empty())
      throw UsageError(what + ": " + why);
    for (std::size_t c = 0; c < cols.size(); ++c)
      rows(fields[c].name.c_str(), std::visit([](const auto& v) { return v.size(); }, cols[c]));
  };
  columns("result", b.values, job.results);
  columns("param", b.params, job.params);
  if (!ids.empty()) check_claims(b.keys, ids);

  const std::uint32_t id = log_job_id(job);
  const std::uint16_t mem_job = mem().job_index(job.name, job.version);
  const auto [lo, hi] = std::minmax_element(b.rank.begin(), b.rank.end());
  mem().note(*lo, b.run);
  mem().note(*hi, b.run);
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

template <class Encode>
void Store::Impl::log_records(std::vector<std::size_t>& offsets, Encode&& encode) {
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

void Store::Impl::add_row(const TaskKey& key, std::uint16_t mem_job, bool failed,
                          const std::vector<std::size_t>& offsets, std::size_t i) {
  index_mem(key, failed, mem().add_encoded(key, mem_job, failed, offsets[i], row_size(offsets, i)));
}

std::uint32_t Store::Impl::row_size(const std::vector<std::size_t>& offsets, std::size_t i) {
  return static_cast<std::uint32_t>(offsets[i + 1] - offsets[i]);
}

}  // namespace mpibatch
