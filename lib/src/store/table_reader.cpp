// TableReader: a table's jobs, runs and rows, and its key index.
#include <fcntl.h>

#include <algorithm>
#include <charconv>
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

FieldType parse_type(const std::string& s, const std::string& where) {
  if (s == "int64") return FieldType::int64;
  if (s == "float64") return FieldType::float64;
  if (s == "bool") return FieldType::boolean;
  if (s == "string") return FieldType::string;
  throw StoreCorruptError(where + ": unknown field type '" + s + "'");
}

RunState parse_state(const std::string& s) {
  for (auto st : {RunState::running, RunState::finished, RunState::stopped, RunState::failed,
                  RunState::crashed}) {
    if (s == mpibatch::to_string(st)) return st;
  }
  return RunState::crashed;
}

// A run group's name: its id (std::stoll would throw a non-Error on "x").
std::int64_t run_id(const std::string& name, const std::string& where) {
  std::int64_t id = 0;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), id);
  if (ec != std::errc() || end != name.data() + name.size() || name.empty())
    throw StoreCorruptError(where + ": run group '" + name + "' is not a run number");
  return id;
}

// Reads a string column into strs. A read that fails partway (a chunk
// that fails its checksum) has already allocated the strings of the chunks
// before it: they are freed before the error goes on.
template <class Read>
void read_strings(const Read& read, hid_t ds, hid_t type, std::vector<char*>& strs) {
  std::fill(strs.begin(), strs.end(), nullptr);
  try {
    read(ds, type, strs.data());
  } catch (const Error&) {
    h5::reclaim(type, strs.data(), strs.size());
    throw;
  }
}

std::vector<Field> read_fields(hid_t g, const std::string& prefix, const std::string& where) {
  const auto names = h5::read_attr_strings(g, prefix + "_names");
  const auto types = h5::read_attr_strings(g, prefix + "_types");
  const auto units = h5::read_attr_strings(g, prefix + "_units");
  const auto descriptions = h5::read_attr_strings(g, prefix + "_descriptions");
  if (types.size() != names.size() || units.size() != names.size() ||
      descriptions.size() != names.size()) {
    throw StoreCorruptError(where + ": field attributes of different lengths");
  }
  std::vector<Field> fields(names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    fields[i] = Field{names[i], parse_type(types[i], where), units[i], descriptions[i]};
  }
  return fields;
}

}  // namespace

TableReader::TableReader(const std::filesystem::path& path) : path_(path) {
  const std::string name = path.string();
  h5::init();  // before any HDF5 call: it sets how HDF5 opens files
  try {
    if (H5Fis_hdf5(name.c_str()) <= 0) {
      throw NotAStoreError(name + ": not an HDF5 file, so not an mpibatch store");
    }
    file_ = h5::open_file_read(name);
  } catch (const Hdf5Error& e) {
    throw StoreCorruptError(name + ": cannot open: " + e.what());
  }
  if (!h5::has_attr(file_.get(), "mpibatch_format")) {
    throw NotAStoreError(name + ": an HDF5 file but not an mpibatch store (no mpibatch_format)");
  }
  if (is_view(file_.get())) {
    throw StoreCorruptError(name + ": a store's view, but its folder " +
                            Store::sidecar(path).filename().string() +
                            " (the MANIFEST and the tables) is missing");
  }
  format_ = h5::read_attr_int(file_.get(), "mpibatch_format");
  if (format_ > kStoreFormat) {
    throw StoreVersionError(name + ": store format version " + std::to_string(format_) +
                            " is newer than this mpibatch reads (" + std::to_string(kStoreFormat) +
                            "); upgrade mpibatch");
  }
  try {
    through_seq_ = h5::read_attr_int(file_.get(), "through_seq");
    h5::Handle jobs = h5::open_group(file_.get(), "jobs");
    for (const auto& job : h5::child_names(jobs.get())) {
      h5::Handle jg = h5::open_group(jobs.get(), job);
      for (const auto& v : h5::child_names(jg.get())) {
        h5::Handle g = h5::open_group(jg.get(), v);
        Group grp;
        const std::string where = name + ":/jobs/" + job + "/" + v;
        grp.job.name = h5::read_attr_string(g.get(), "name");
        grp.job.version = h5::read_attr_int(g.get(), "version");
        grp.job.description = h5::read_attr_string(g.get(), "description");
        grp.job.params = read_fields(g.get(), "param", where);
        grp.job.results = read_fields(g.get(), "result", where);
        h5::Handle k(
            h5::check_id(H5Dopen2(g.get(), "key", H5P_DEFAULT), "H5Dopen2", where + "/key"));
        grp.rows = h5::dataset_size(k.get());
        grp.has_error = h5::exists(g.get(), "error");
        groups_.push_back(std::move(grp));
      }
    }
    h5::Handle runs = h5::open_group(file_.get(), "runs");
    for (const auto& id : h5::child_names(runs.get())) {
      h5::Handle g = h5::open_group(runs.get(), id);
      if (h5::exists(g.get(), "tasks")) {
        h5::Handle t(h5::check_id(H5Dopen2(g.get(), "tasks", H5P_DEFAULT), "H5Dopen2",
                                  name + ":/runs/" + id + "/tasks"));
        task_rows_[run_id(id, name)] = h5::dataset_size(t.get());
      }
      if (!h5::has_attr(g.get(), "state")) continue;
      RunInfo r;
      r.id = run_id(id, name);
      r.start_time = h5::read_attr_double(g.get(), "start_time");
      r.end_time = h5::read_attr_double(g.get(), "end_time");
      r.command_line = h5::read_attr_string(g.get(), "command_line");
      r.ranks = static_cast<std::int32_t>(h5::read_attr_int(g.get(), "ranks"));
      r.hosts = h5::read_attr_strings(g.get(), "hosts");
      r.slurm_job_id = h5::read_attr_string(g.get(), "slurm_job_id");
      r.slurm_nodelist = h5::read_attr_string(g.get(), "slurm_nodelist");
      r.slurm_restart_count =
          static_cast<std::int32_t>(h5::read_attr_int(g.get(), "slurm_restart_count"));
      r.state = parse_state(h5::read_attr_string(g.get(), "state"));
      r.exit_status = static_cast<std::int32_t>(h5::read_attr_int(g.get(), "exit_status"));
      r.task_count = h5::read_attr_int(g.get(), "task_count");
      if (h5::has_attr(g.get(), "task_spec"))
        r.task_spec = h5::read_attr_string(g.get(), "task_spec");
      if (h5::has_attr(g.get(), "computed")) {
        RunCounts c;
        c.total = h5::read_attr_int(g.get(), "total");
        c.cached = h5::read_attr_int(g.get(), "cached");
        c.computed = h5::read_attr_int(g.get(), "computed");
        c.failed = h5::read_attr_int(g.get(), "failed");
        c.per_rank = h5::read_attr_ints(g.get(), "per_rank");
        r.counts = std::move(c);
      }
      runs_.push_back(std::move(r));
    }
  } catch (const Hdf5Error& e) {
    throw StoreCorruptError(name + ": damaged: " + e.what());
  }
}

TableReader::~TableReader() = default;

namespace {
h5::Handle open_dataset(hid_t file, const std::string& path) {
  return h5::Handle(h5::check_id(H5Dopen2(file, path.c_str(), H5P_DEFAULT), "H5Dopen2", path));
}
}  // namespace

void TableReader::read_index(std::size_t g, std::vector<TaskKey>& keys,
                             std::vector<std::int8_t>& status) const {
  const Group& grp = groups_.at(g);
  const std::string gp = group_path(grp.job.id());
  keys.resize(grp.rows);
  status.resize(grp.rows);
  h5::Handle key = h5::key_type(), st = h5::status_type();
  h5::read_rows(open_dataset(file_.get(), gp + "/key").get(), key.get(), 0, grp.rows, keys.data());
  h5::read_rows(open_dataset(file_.get(), gp + "/status").get(), st.get(), 0, grp.rows,
                status.data());
}

namespace {

// Fills out[i].result from the flat byte column, one read per stretch of
// nearby rows (gaps under 64 KiB are read through rather than seeked over).
void read_result_bytes(hid_t data, const std::vector<std::uint64_t>& offset,
                       const std::vector<std::uint64_t>& size, std::vector<Record>& out) {
  constexpr std::uint64_t kGap = 1 << 16;
  // Offsets and sizes are read from the file: none may reach past its bytes.
  const hsize_t total = h5::dataset_size(data);
  for (std::size_t i = 0; i < offset.size(); ++i)
    if (offset[i] > total || size[i] > total - offset[i])
      throw StoreCorruptError(h5::name_of(data) + ": a row's result bytes lie past its end");
  std::vector<std::size_t> order(offset.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return offset[a] < offset[b]; });
  std::string buf;
  for (std::size_t i = 0; i < order.size();) {
    const std::uint64_t begin = offset[order[i]];
    std::uint64_t end = begin + size[order[i]];
    std::size_t j = i + 1;
    while (j < order.size() && offset[order[j]] <= end + kGap) {
      end = std::max(end, offset[order[j]] + size[order[j]]);
      ++j;
    }
    buf.resize(end - begin);
    h5::read_rows(data, H5T_NATIVE_UINT8, begin, end - begin, buf.data());
    for (std::size_t k = i; k < j; ++k) {
      out[order[k]].result.assign(buf, offset[order[k]] - begin, size[order[k]]);
    }
    i = j;
  }
}

}  // namespace

namespace {

// Reads group/<prefix><field> for every field into (out[i].*member).
template <class Read, class Col>
void read_values(const Read& read, const Col& col, const std::string& prefix,
                 const std::vector<Field>& fields, std::vector<Record>& out,
                 std::vector<Value> Record::*member, bool ok_rows_only) {
  const std::size_t n = out.size();
  std::vector<std::int64_t> i64(n);
  std::vector<double> d(n);
  std::vector<std::int8_t> i8(n);
  std::vector<char*> strs(n);
  h5::Handle str = h5::utf8_string_type(), boolean = h5::bool_type();
  auto keep = [&](std::size_t i) { return !ok_rows_only || out[i].status == Status::ok; };
  for (const Field& f : fields) {
    h5::Handle ds = col(prefix + f.name);
    // Values are built in place (GCC 12 warns on moving variants around).
    switch (f.type) {
      case FieldType::int64:
        read(ds.get(), H5T_NATIVE_INT64, i64.data());
        for (std::size_t i = 0; i < n; ++i)
          if (keep(i)) (out[i].*member).emplace_back(std::in_place_type<std::int64_t>, i64[i]);
        break;
      case FieldType::float64:
        read(ds.get(), H5T_NATIVE_DOUBLE, d.data());
        for (std::size_t i = 0; i < n; ++i)
          if (keep(i)) (out[i].*member).emplace_back(std::in_place_type<double>, d[i]);
        break;
      case FieldType::boolean:
        read(ds.get(), boolean.get(), i8.data());
        for (std::size_t i = 0; i < n; ++i)
          if (keep(i)) (out[i].*member).emplace_back(std::in_place_type<bool>, i8[i] != 0);
        break;
      case FieldType::string:
        read_strings(read, ds.get(), str.get(), strs);
        for (std::size_t i = 0; i < n; ++i)
          if (keep(i))
            (out[i].*member).emplace_back(std::in_place_type<std::string>, strs[i] ? strs[i] : "");
        h5::reclaim(str.get(), strs.data(), n);
        break;
    }
  }
}

}  // namespace

std::vector<Record> TableReader::read_selected(
    std::size_t g, hsize_t n, const std::function<void(hid_t, hid_t, void*)>& read) const {
  const Group& grp = groups_.at(g);
  const std::string gp = group_path(grp.job.id());
  auto col = [&](const std::string& c) { return open_dataset(file_.get(), gp + "/" + c); };
  std::vector<Record> out(n);
  if (n == 0) return out;
  std::vector<TaskKey> keys(n);
  std::vector<std::int8_t> i8(n);
  std::vector<std::int32_t> i32(n);
  std::vector<double> d(n);
  std::vector<std::int64_t> i64(n);
  std::vector<std::uint64_t> offset(n), size(n);
  std::vector<char*> strs(n);
  h5::Handle key = h5::key_type(), st = h5::status_type(), str = h5::utf8_string_type(),
             boolean = h5::bool_type();

  read(col("key").get(), key.get(), keys.data());
  read(col("status").get(), st.get(), i8.data());
  for (std::size_t i = 0; i < n; ++i) {
    out[i].key = keys[i];
    out[i].job = grp.job.name;
    out[i].job_version = grp.job.version;
    out[i].status = static_cast<Status>(i8[i]);
  }
  read(col("rank").get(), H5T_NATIVE_INT32, i32.data());
  for (std::size_t i = 0; i < n; ++i) out[i].rank = i32[i];
  read(col("start_time").get(), H5T_NATIVE_DOUBLE, d.data());
  for (std::size_t i = 0; i < n; ++i) out[i].start_time = d[i];
  read(col("duration").get(), H5T_NATIVE_DOUBLE, d.data());
  for (std::size_t i = 0; i < n; ++i) out[i].duration = d[i];
  read(col("run").get(), H5T_NATIVE_INT64, i64.data());
  for (std::size_t i = 0; i < n; ++i) out[i].run = i64[i];
  if (h5::exists(file_.get(), gp + "/result_size")) {  // else no record has result bytes
    read(col("result_offset").get(), H5T_NATIVE_UINT64, offset.data());
    read(col("result_size").get(), H5T_NATIVE_UINT64, size.data());
    read_result_bytes(col("result_data").get(), offset, size, out);
  }
  if (grp.has_error) {  // else no row failed
    read_strings(read, col("error").get(), str.get(), strs);
    for (std::size_t i = 0; i < n; ++i) out[i].error = strs[i] ? strs[i] : "";
    h5::reclaim(str.get(), strs.data(), n);
  }

  // Before format 4, results of failed rows were stand-ins: not read back.
  read_values(read, col, "results/", grp.job.results, out, &Record::values, format_ < 4);
  read_values(read, col, "params/", grp.job.params, out, &Record::params, false);
  for (Record& r : out) {
    if (r.status == Status::failed && std::all_of(r.values.begin(), r.values.end(),
                                                  [](const Value& v) { return is_stand_in(v); }))
      r.values.clear();
  }
  return out;
}

std::vector<Record> TableReader::read_range(std::size_t g, hsize_t start, hsize_t count) const {
  return read_selected(
      g, count, [&](hid_t ds, hid_t mt, void* buf) { h5::read_rows(ds, mt, start, count, buf); });
}

std::vector<Record> TableReader::read_rows(std::size_t g, const std::vector<hsize_t>& rows) const {
  if (rows.empty()) return {};
  const auto [lo, hi] = std::minmax_element(rows.begin(), rows.end());
  const hsize_t span = *hi - *lo + 1;
  if (span <= 4 * rows.size()) {  // dense: one range read beats a point selection
    std::vector<Record> range = read_range(g, *lo, span);
    std::vector<Record> out(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) out[i] = range[rows[i] - *lo];
    return out;
  }
  return read_selected(g, rows.size(),
                       [&](hid_t ds, hid_t mt, void* buf) { h5::read_points(ds, mt, rows, buf); });
}

const KeyIndex& TableReader::key_index() const {
  if (index_) return *index_;
  std::vector<std::pair<std::string, std::uint64_t>> groups;
  for (const Group& g : groups_) groups.emplace_back(group_path(g.job.id()), g.rows);
  // The index is derived data: a damaged one is rebuilt from the key
  // columns (verify reports it; the next merge writes a sound one).
  try {
    index_ = KeyIndex::open(file_.get(), path_, groups);
  } catch (const Hdf5Error& e) {
    index_damage_ = path_.string() + ": key index: " + e.what();
  } catch (const StoreCorruptError& e) {
    index_damage_ = e.what();
  }
  if (!index_) {
    std::vector<std::pair<std::vector<TaskKey>, std::vector<std::int8_t>>> columns(groups_.size());
    for (std::size_t g = 0; g < groups_.size(); ++g)
      read_index(g, columns[g].first, columns[g].second);
    index_ = KeyIndex::build(path_, columns);
  }
  return *index_;
}

void TableReader::set_replacing(std::vector<TaskKey> keys) const {
  key_index();
  index_->set_replacing(std::move(keys));
}

std::vector<std::string> TableReader::check_index() const {
  std::vector<std::string> out;
  if (!key_index().in_file() && !index_damage_.empty()) out.push_back(index_damage_);
  try {
    const KeyIndex& x = key_index();
    std::vector<TaskKey> keys;
    std::vector<std::int8_t> status;
    std::size_t rows = 0;
    for (std::size_t g = 0; g < groups_.size() && out.empty(); ++g) {
      read_index(g, keys, status);
      rows += keys.size();
      for (std::size_t i = 0; i < keys.size(); ++i) {
        const auto hit = x.find(keys[i]);
        if (!hit || hit->group != g || hit->row != i || hit->failed != (status[i] != 0)) {
          out.push_back("key index: key " + keys[i].hex() + " (row " + std::to_string(i) +
                        ") is not indexed where it is stored");
          break;
        }
      }
    }
    if (out.empty()) {
      if (std::string problem = x.check(); !problem.empty()) out.push_back(problem);
    }
    if (out.empty() && rows != x.size()) {
      out.push_back("key index: " + std::to_string(x.size()) + " keys for " + std::to_string(rows) +
                    " rows");
    }
  } catch (const Error& e) {
    out.emplace_back(e.what());
  }
  return out;
}

std::pair<bool, bool> TableReader::narrow_columns(std::size_t g) const {
  const std::string gp = group_path(groups_.at(g).job.id());
  auto narrow = [&](const char* column) {
    h5::Handle ds = open_dataset(file_.get(), gp + "/" + column);
    h5::Handle type(h5::check_id(H5Dget_type(ds.get()), "H5Dget_type", column));
    return H5Tget_size(type.get()) <= 2;
  };
  return {narrow("rank"), narrow("run")};
}

void TableReader::read_tasks(std::int64_t run, std::vector<TaskKey>& keys) const {
  const std::string p = "runs/" + std::to_string(run);
  if (!h5::exists(file_.get(), "runs") || !h5::exists(file_.get(), p)) return;
  h5::Handle ds = open_dataset(file_.get(), p + "/tasks");
  const hsize_t n = h5::dataset_size(ds.get());
  const std::size_t old = keys.size();
  keys.resize(old + n);
  h5::Handle key = h5::key_type();
  h5::read_rows(ds.get(), key.get(), 0, n, keys.data() + old);
}

}  // namespace mpibatch::detail
