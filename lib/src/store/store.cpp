// Store: the log + immutable tables + key index (docs/ARCHITECTURE.md). This
// file holds the public methods; store_impl.hpp says where the rest is.
#include "mpibatch/store.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <regex>
#include <tuple>

#include "core/prefetch.hpp"
#include "core/shown_paths.hpp"
#include "hdf5/hdf5.hpp"
#include "mpibatch/store_dispatch.hpp"
#include "store/file_util.hpp"
#include "store/frame_codec.hpp"
#include "store/store_impl.hpp"

namespace mpibatch {

using namespace detail;

namespace {

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

}  // namespace

namespace detail {

std::string widen(JobInfo& stored, const JobInfo& job) {
  if (job.description != stored.description) return "another description";
  for (const auto& [mine, theirs, what] : {std::tuple{&stored.params, &job.params, "param"},
                                           std::tuple{&stored.results, &job.results, "result"}}) {
    std::vector<Field> added;
    for (const Field& f : *theirs) {
      const auto it = std::find_if(mine->begin(), mine->end(),
                                   [&f](const Field& s) { return s.name == f.name; });
      if (it == mine->end()) {
        added.push_back(f);
      } else if (it->type != f.type) {
        return std::string(what) + " '" + f.name + "' of type " + to_string(it->type) + ", not " +
               to_string(f.type);
      }
    }
    mine->insert(mine->end(), added.begin(), added.end());
  }
  return {};
}

}  // namespace detail

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

std::vector<Problem> Store::check_files() const {
  const Impl& s = *impl_;
  s.require_records("check its files");
  std::vector<Problem> out;
  if (!s.base_file.empty()) {  // format 2 on: the file is the view
    std::string why;
    for (const auto& stamp : s.view_stamps) {
      try {
        why = detail::check_stamp(s.path, stamp, true);
      } catch (const IoError& e) {
        why = e.what();
      }
      if (why.empty()) break;
    }
    if (!why.empty()) {  // never handed to HDF5, which may crash on it
      out.push_back({s.path.string(), "the view: " + why +
                                          "; h5py may read wrong values from it until the next "
                                          "'mpibatch run' on the store writes it anew"});
    } else {
      for (auto& what : detail::check_view(s.path, s.view_sources(), s.jobs))
        out.push_back({s.path.string(), std::move(what)});
    }
  }
  for (const auto& t : s.tables) {
    for (auto& what : t->check_index()) out.push_back({t->path().string(), std::move(what)});
    for (auto& what : t->check_data()) out.push_back({t->path().string(), std::move(what)});
  }
  for (auto& p : out) p = {detail::shown_paths(p.file), detail::shown_paths(p.what)};
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

  impl->open_sidecar();
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
      impl->open_sidecar();
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
  for (auto& p : impl->problems) p = {detail::shown_paths(p.file), detail::shown_paths(p.what)};

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
      // valid (tables keep their numbers; the next open reads it). The damaged
      // base is kept aside as damaged-<name>, never deleted.
      const fs::path damaged = impl->base_path();
      if (fs::exists(damaged, ec))
        fs::rename(damaged, impl->dir / ("damaged-" + damaged.filename().string()), ec);
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
    impl->trim_logs();
    impl->start_log();
    impl->save_manifest();  // lists the log, and the logs replayed with their committed length
    // A run still "running" was cut short by a crash: say so.
    for (auto& [id, r] : impl->runs) {
      if (r.state == RunState::running) {
        r.state = RunState::crashed;
        impl->log->add([&r = r](std::string& out) { detail::encode_run(out, r); });
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

const JobInfo& Store::define_job(const JobInfo& job) {
  impl_->require_writer("define a job");
  validate_job(job);
  for (auto& j : impl_->jobs) {
    if (j.name != job.name || j.version != job.version) continue;
    JobInfo wider = j;
    if (const std::string why = widen(wider, job); !why.empty()) {
      throw UsageError("job " + job.name + " v" + std::to_string(job.version) +
                       " is already defined in store " + impl_->path.string() + " with " + why +
                       "; give the job a new version, or use another store");
    }
    if (wider != j) {
      j = std::move(wider);
      impl_->log_job_id(j, /*again=*/true);
      impl_->uncommitted = true;
    }
    return j;
  }
  impl_->jobs.push_back(job);
  impl_->log_job_id(job);
  impl_->uncommitted = true;
  return impl_->jobs.back();
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

void Store::lookup(std::span<const TaskKey> keys, std::span<Lookup> out) const {
  impl_->require_records("look keys up");
  if (out.size() != keys.size()) throw UsageError("lookup: output size differs from key count");
  std::vector<std::optional<Loc>> locs(keys.size());
  impl_->locate(keys, locs);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    out[i] = !locs[i] ? Lookup::missing : locs[i]->failed() ? Lookup::failed : Lookup::ok;
  }
}

std::optional<Record> Store::get(const TaskKey& key) const {
  impl_->require_records("get a record");
  std::optional<Loc> loc;
  impl_->locate({&key, 1}, {&loc, 1});
  if (!loc) return std::nullopt;
  return std::move(impl_->fetch({*loc}).front());
}

std::size_t Store::size() const {
  impl_->require_records("count records");
  const Impl& s = *impl_;
  // Every stored row less those a newer record replaced: one per replacing key.
  std::size_t n = 0;
  for (const auto& t : s.tables) n += Impl::rows_of(*t) - t->key_index().replacing().size();
  for (unsigned slot = 0; slot < 2; ++slot) {
    if (s.mem_table[slot] == kNoTable) continue;
    const auto& m = s.mems[slot];
    n += m.entries.size() - m.superseded - m.replacing.size();
  }
  return n;
}

void Store::for_each(const std::function<void(const Record&)>& fn) const {
  impl_->require_records("read records");
  impl_->each_stored(fn);
}

void Store::for_each_key(std::span<const TaskKey> keys,
                         const std::function<void(const TaskKey&, const Record*)>& fn) const {
  impl_->require_records("read records");
  std::vector<std::optional<Loc>> found;
  std::vector<Loc> locs;
  std::vector<std::size_t> where;
  for (std::size_t i = 0; i < keys.size(); i += kFetchChunk) {
    const std::size_t n = std::min(keys.size() - i, kFetchChunk);
    found.assign(n, std::nullopt);
    impl_->locate(keys.subspan(i, n), found);
    locs.clear();
    where.assign(n, SIZE_MAX);
    for (std::size_t j = 0; j < n; ++j) {
      if (found[j]) {
        where[j] = locs.size();
        locs.push_back(*found[j]);
      }
    }
    const auto recs = impl_->fetch(locs);
    for (std::size_t j = 0; j < n; ++j)
      fn(keys[i + j], where[j] == SIZE_MAX ? nullptr : &recs[where[j]]);
  }
}

void Store::for_each_task(std::int64_t run,
                          const std::function<void(const TaskKey&, const Record*)>& fn) const {
  impl_->require_records("read a run's tasks");
  if (!impl_->runs.count(run))
    throw UsageError("no run " + std::to_string(run) + " in store " + impl_->path.string());
  std::vector<TaskKey> keys;
  for (const auto& t : impl_->tables) {
    keys.clear();
    t->read_tasks(run, keys);
    for_each_key(keys, fn);
  }
  // Memtables: a frozen one (being flushed) holds earlier tasks than the active one.
  const Impl& s = *impl_;
  for (unsigned slot : {1 - s.active, s.active}) {
    if (auto it = s.mems[slot].tasks.find(run); it != s.mems[slot].tasks.end())
      for_each_key(it->second, fn);
  }
}

void Store::close() {
  Impl& s = *impl_;
  if (s.closed) return;
  if (s.writer()) {
    s.release_claims();
    s.commit();
    s.flush_now();
    // Leave no empty log behind, unlisted first: a listed log that is
    // missing is one whose records were lost.
    const fs::path current = s.log->path();
    s.log.reset();
    s.save_manifest();
    std::error_code ec;
    fs::remove(current, ec);
    s.lock.release();
  }
  s.closed = true;
}

// ---------------------------------------------------------------- dispatch

namespace detail {
struct StoreAccess {
  static Store::Impl& of(Store& s) { return *s.impl_; }
  static const Store::Impl& of(const Store& s) { return *s.impl_; }
};
}  // namespace detail

namespace dispatch {

void append(Store& store, const RecordBatch& batch) {
  detail::StoreAccess::of(store).append_columns(batch, {});
}

void append(Store& store, const RecordBatch& batch, std::span<const Claim> claims) {
  detail::StoreAccess::of(store).append_columns(batch, claims);
}

void claim(Store& store, std::span<const TaskKey> keys, std::span<Lookup> out,
           std::span<Claim> claims, bool claim_failed) {
  detail::StoreAccess::of(store).claim(keys, out, claims, claim_failed);
}

void release_claims(Store& store) {
  detail::StoreAccess::of(store).release_claims();
}

bool commit_due(const Store& store) {
  const Store::Impl& s = detail::StoreAccess::of(store);
  return s.writer() && s.mems[s.active].size() >= s.opt.segment_records;
}

void reserve(Store& store, std::size_t keys) {
  // Room for a run of 10^8 tasks at most: a larger one (--grid x=1..1e12)
  // grows the index as keys come rather than asking for terabytes up front.
  constexpr std::size_t kMost = std::size_t{1} << 27;
  detail::StoreAccess::of(store).index.reserve(std::min(keys, kMost));
}

}  // namespace dispatch

}  // namespace mpibatch
