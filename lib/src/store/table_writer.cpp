// TableWriter: a table written whole into a temporary file, then renamed into place.
#include <fcntl.h>

#include <algorithm>
#include <cmath>

#include "core/value_types.hpp"
#include "mpibatch/error.hpp"
#include "mpibatch/version.hpp"
#include "store/file_util.hpp"
#include "store/schema.hpp"
#include "store/table.hpp"
#include "store/view.hpp"

namespace mpibatch::detail {

namespace {

constexpr hsize_t kChunkRows = 4096;
constexpr hsize_t kDataChunk = hsize_t{1} << 16;

}  // namespace

// One native column per field, in group/<sub>/<field>: a job's results or params.
class ValueColumns {
 public:
  ValueColumns() = default;
  ValueColumns(hid_t group, const char* sub, const std::vector<Field>& fields, int deflate) {
    if (fields.empty()) return;
    h5::Handle g = h5::create_group(group, sub);
    for (const auto& f : fields) {
      types_.push_back(field_type(f.type));
      cols_.emplace_back(g.get(), f.name, types_.back().get(), kChunkRows, deflate);
      h5::write_attr(cols_.back().id(), "units", f.unit);
      h5::write_attr(cols_.back().id(), "description", f.description);
    }
  }

  // Appends each column to its field's dataset (columns typed as the fields).
  void append(const std::vector<ValueColumn>& columns) {
    for (std::size_t f = 0; f < cols_.size(); ++f) {
      const hid_t mt = types_[f].get();
      std::visit(
          [&](const auto& col) {
            using T = typename std::decay_t<decltype(col)>::value_type;
            if constexpr (std::is_same_v<T, std::string>) {
              std::vector<const char*> v(col.size());
              for (std::size_t i = 0; i < col.size(); ++i) v[i] = col[i].c_str();
              cols_[f].append(mt, v.data(), v.size());
            } else {
              cols_[f].append(mt, col.data(), col.size());
            }
          },
          columns.at(f));
    }
  }

 private:
  std::vector<h5::Column> cols_;
  std::vector<h5::Handle> types_;
};

struct TableWriter::Group {
  JobInfo job;
  std::uint32_t ordinal = 0;  // in the key index's numbering
  h5::Handle gid;
  // Only in compressed tables: an uncompressed table's key index writes
  // its key column, contiguous, at the end.
  std::unique_ptr<h5::Column> key;
  // status rank start_time duration run
  std::vector<h5::Column> cols;
  // Only once a row failed (16 bytes a row otherwise, for nothing): the
  // rows before get none.
  std::unique_ptr<h5::Column> error;
  hsize_t rows = 0;
  // Only in groups whose records carry result bytes (jobs of the C++ API):
  // result_offset, result_size, and all result bytes concatenated.
  std::unique_ptr<h5::Column> result_offset, result_size, result_data;
  ValueColumns results;  // results/<field>
  ValueColumns params;   // params/<field>
};

struct TableWriter::RunGroup {
  h5::Handle gid;
  std::unique_ptr<h5::Column> tasks;
};

TableWriter::TableWriter(std::filesystem::path tmp_path, std::int64_t through_seq, int deflate)
    : tmp_path_(std::move(tmp_path)), index_(deflate == 0), deflate_(deflate) {
  file_ = h5::create_file(tmp_path_.string());
  fd_ = h5::file_descriptor(file_.get());
  h5::write_attr(file_.get(), "mpibatch_format", kStoreFormat);
  h5::write_attr(file_.get(), "mpibatch_version", std::string(MPIBATCH_VERSION));
  h5::write_attr(file_.get(), "through_seq", through_seq);
  h5::create_group(file_.get(), "jobs");
  h5::create_group(file_.get(), "runs");
}

TableWriter::~TableWriter() {
  if (!finished_) {
    groups_.clear();
    runs_.clear();
    file_.reset();
    std::error_code ec;
    std::filesystem::remove(tmp_path_, ec);
  }
}

void TableWriter::add_jobs(const std::vector<JobInfo>& jobs) {
  for (const auto& j : jobs) {
    auto& g = groups_[group_path(j.id())];
    if (g) continue;
    const auto ordinal = static_cast<std::uint32_t>(groups_.size() - 1);
    g = std::make_unique<Group>();
    g->job = j;
    g->ordinal = ordinal;
    g->gid = h5::create_group(file_.get(), group_path(j.id()));
    const hid_t gid = g->gid.get();
    write_job_attrs(gid, j);
    h5::Handle key = h5::key_type(), status = h5::status_type();
    if (deflate_ > 0)
      g->key = std::make_unique<h5::Column>(gid, "key", key.get(), kChunkRows, deflate_);
    g->cols.emplace_back(gid, "status", status.get(), kChunkRows, deflate_);
    g->cols.emplace_back(gid, "rank", rank16_ ? H5T_NATIVE_INT16 : H5T_NATIVE_INT32, kChunkRows,
                         deflate_);
    g->cols.emplace_back(gid, "start_time", H5T_NATIVE_DOUBLE, kChunkRows, deflate_);
    g->cols.emplace_back(gid, "duration", H5T_NATIVE_FLOAT, kChunkRows, deflate_);
    g->cols.emplace_back(gid, "run", run16_ ? H5T_NATIVE_INT16 : H5T_NATIVE_INT32, kChunkRows,
                         deflate_);
    h5::write_attr(g->cols[2].id(), "units", std::string("s since 1970-01-01 UTC"));
    h5::write_attr(g->cols[3].id(), "units", std::string("s"));
    g->results = ValueColumns(gid, "results", j.results, deflate_);
    g->params = ValueColumns(gid, "params", j.params, deflate_);
  }
}

TableWriter::Group& TableWriter::group(const std::string& job, std::int64_t version) {
  auto it = groups_.find(group_path({job, version}));
  if (it == groups_.end())
    throw Error("table: job " + job + " v" + std::to_string(version) + " not added");
  return *it->second;
}

void TableWriter::append(const std::string& job, std::int64_t version,
                         std::span<const Record* const> rows) {
  if (rows.empty()) return;
  RowColumns columns;
  columns.reset(group(job, version).job);
  for (const Record* r : rows) columns.add(*r);
  append(job, version, columns);
}

void TableWriter::append(const std::string& job, std::int64_t version, const RowColumns& rows) {
  const hsize_t n = rows.size();
  if (n == 0) return;
  Group& g = group(job, version);
  h5::Handle key = h5::key_type(), st = h5::status_type(), str = h5::utf8_string_type();
  // HDF5 would clip a value too wide for its column without a word.
  auto check16 = [&](bool narrow, const auto& column, const char* name) {
    if (!narrow) return;
    for (const auto v : column)
      if (v < INT16_MIN || v > INT16_MAX)
        throw StoreError("table " + tmp_path_.string() + ": " + name + " " + std::to_string(v) +
                         " does not fit its 16-bit column");
  };
  check16(rank16_, rows.rank, "rank");
  check16(run16_, rows.run, "run");
  if (!external_index_) index_.add(g.ordinal, g.rows, rows.keys, rows.status);
  if (g.key) g.key->append(key.get(), rows.keys.data(), n);
  g.cols[0].append(st.get(), rows.status.data(), n);
  g.cols[1].append(H5T_NATIVE_INT32, rows.rank.data(), n);
  g.cols[2].append(H5T_NATIVE_DOUBLE, rows.start_time.data(), n);
  g.cols[3].append(H5T_NATIVE_DOUBLE, rows.duration.data(), n);
  g.cols[4].append(H5T_NATIVE_INT64, rows.run.data(), n);
  const bool failures = std::any_of(rows.error_at.begin(), rows.error_at.end(),
                                    [](std::int64_t at) { return at >= 0; });
  if (failures && !g.error) {
    g.error = std::make_unique<h5::Column>(g.gid.get(), "error", str.get(), kChunkRows, deflate_);
    const std::vector<const char*> none(g.rows, nullptr);
    g.error->append(str.get(), none.data(), none.size());
  }
  if (g.error) {
    std::vector<const char*> error(n);
    for (std::size_t i = 0; i < n; ++i) {
      // NULL, not "": HDF5 then stores no heap object for an empty error.
      error[i] = rows.error_at[i] < 0 ? nullptr : rows.errors.data() + rows.error_at[i];
    }
    g.error->append(str.get(), error.data(), n);
  }
  if (!rows.results.empty() && !g.result_size) {
    // The first result bytes of this group: the rows before had none.
    const hid_t gid = g.gid.get();
    g.result_offset =
        std::make_unique<h5::Column>(gid, "result_offset", H5T_NATIVE_UINT64, kChunkRows, deflate_);
    g.result_size =
        std::make_unique<h5::Column>(gid, "result_size", H5T_NATIVE_UINT64, kChunkRows, deflate_);
    // One flat column, not variable-length rows: HDF5's variable-length
    // storage (the global heap) costs microseconds per row.
    g.result_data =
        std::make_unique<h5::Column>(gid, "result_data", H5T_NATIVE_UINT8, kDataChunk, deflate_);
    h5::write_attr(g.result_data->id(), "description",
                   std::string("Boost binary archives of the results; row i is "
                               "result_data[result_offset[i]:result_offset[i]+result_size[i]]"));
    const std::vector<std::uint64_t> zeros(g.rows, 0);
    g.result_offset->append(H5T_NATIVE_UINT64, zeros.data(), zeros.size());
    g.result_size->append(H5T_NATIVE_UINT64, zeros.data(), zeros.size());
  }
  if (g.result_size) {
    std::vector<std::uint64_t> offset(n);
    std::uint64_t at = g.result_data->size();
    for (std::size_t i = 0; i < n; ++i) {
      offset[i] = at;
      at += rows.result_sizes[i];
    }
    g.result_offset->append(H5T_NATIVE_UINT64, offset.data(), n);
    g.result_size->append(H5T_NATIVE_UINT64, rows.result_sizes.data(), n);
    g.result_data->append(H5T_NATIVE_UINT8, rows.results.data(), rows.results.size());
  }
  g.rows += n;
  g.results.append(rows.values);
  g.params.append(rows.params);
  // The disk starts on what is written so far, so that finish()'s fsync has
  // little left to wait for: the last segment's fsync is on close()'s path.
  // Only a hint: an error here changes nothing, and the fsync still checks.
  if (fd_ >= 0) ::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
}

TableWriter::RunGroup& TableWriter::run_group(std::int64_t run) {
  auto& rg = runs_[run];
  if (!rg) {
    rg = std::make_unique<RunGroup>();
    rg->gid = h5::create_group(file_.get(), "runs/" + std::to_string(run));
    h5::Handle key = h5::key_type();
    rg->tasks = std::make_unique<h5::Column>(rg->gid.get(), "tasks", key.get(), 8192, deflate_);
  }
  return *rg;
}

void TableWriter::append_tasks(std::int64_t run, std::span<const TaskKey> keys) {
  h5::Handle key = h5::key_type();
  run_group(run).tasks->append(key.get(), keys.data(), keys.size());
}

void TableWriter::set_runs(const std::vector<RunInfo>& runs) {
  run_infos_ = runs;
}

void TableWriter::finish(const std::filesystem::path& final_path) {
  for (const RunInfo& r : run_infos_) write_run_attrs(run_group(r.id).gid.get(), r);
  std::vector<std::pair<std::string, std::uint64_t>> order(groups_.size());
  for (const auto& [path, g] : groups_) order[g->ordinal] = {path, g->rows};
  KeyIndexWriter& index = external_index_ ? *external_index_ : index_;
  if (index.keys_in_columns() != (deflate_ == 0))
    throw StoreError("table " + tmp_path_.string() + ": a key index of the wrong layout");
  index.write(file_.get(), order, replacing_);
  groups_.clear();
  runs_.clear();
  h5::check(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), "H5Fflush", tmp_path_.string());
  fd_ = -1;
  // Close by hand so that H5Fclose's status is checked.
  h5::check(H5Fclose(file_.release()), "H5Fclose", tmp_path_.string());
  atomic_replace(tmp_path_, final_path);
  finished_ = true;
}

}  // namespace mpibatch::detail
