#include "store/view.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "mpibatch/error.hpp"
#include "mpibatch/version.hpp"
#include "store/file_util.hpp"
#include "store/schema.hpp"

namespace mpibatch::detail {

namespace {

using RowsOf = std::function<hsize_t(const ViewSource&)>;

// A dataset of type that is the concatenation of src_path in every source
// (rows_of rows each); fill (of type, or null for the type's default) where
// a source cannot be read.
void virtual_column(hid_t parent, const std::string& name, hid_t type, const void* fill,
                    const std::vector<ViewSource>& sources, const RowsOf& rows_of,
                    const std::string& src_path,
                    const std::function<bool(const ViewSource&)>& mapped = {}) {
  hsize_t total = 0;
  for (const auto& s : sources) total += rows_of(s);
  h5::Handle space(h5::check_id(H5Screate_simple(1, &total, nullptr), "H5Screate_simple"));
  h5::Handle dcpl(h5::check_id(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate"));
  if (fill != nullptr)
    h5::check(H5Pset_fill_value(dcpl.get(), type, fill), "H5Pset_fill_value", name);
  hsize_t at = 0;
  for (const auto& s : sources) {
    hsize_t n = rows_of(s);
    if (n == 0) continue;
    if (mapped && !mapped(s)) {  // rows left to the fill value
      at += n;
      continue;
    }
    h5::Handle vspace(h5::check_id(H5Scopy(space.get()), "H5Scopy"));
    h5::check(H5Sselect_hyperslab(vspace.get(), H5S_SELECT_SET, &at, nullptr, &n, nullptr),
              "H5Sselect_hyperslab", name);
    h5::Handle sspace(h5::check_id(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
    // HDF5 reads '%' in a source file name as a format character ("%%" is one '%').
    std::string file;
    for (const char c : s.file) file += c == '%' ? std::string("%%") : std::string(1, c);
    h5::check(
        H5Pset_virtual(dcpl.get(), vspace.get(), file.c_str(), src_path.c_str(), sspace.get()),
        "H5Pset_virtual", s.file + ":" + src_path);
    at += n;
  }
  h5::Handle d(h5::check_id(
      H5Dcreate2(parent, name.c_str(), type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
      "H5Dcreate2", name));
}

void job_group(hid_t file, const JobInfo& job, const std::vector<ViewSource>& sources) {
  const std::string path = group_path(job.id());
  h5::Handle g = h5::create_group(file, path);
  write_job_attrs(g.get(), job);
  const JobId id = job.id();
  const RowsOf rows = [&id](const ViewSource& s) {
    const auto it = s.rows.find(id);
    return it == s.rows.end() ? hsize_t{0} : it->second;
  };
  auto column = [&](hid_t parent, const std::string& name, hid_t type, const void* fill,
                    const std::string& src) {
    virtual_column(parent, name, type, fill, sources, rows, "/" + path + "/" + src);
  };
  const auto has_errors = [&id](const ViewSource& s) { return !s.no_errors.count(id); };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::int8_t missing = -1;
  const std::int32_t no_rank = -1;
  h5::Handle key = h5::key_type(), status = h5::view_status_type(), str = h5::utf8_string_type();
  column(g.get(), "key", key.get(), nullptr, "key");
  column(g.get(), "status", status.get(), &missing, "status");
  column(g.get(), "rank", H5T_NATIVE_INT32, &no_rank, "rank");
  column(g.get(), "start_time", H5T_NATIVE_DOUBLE, &nan, "start_time");
  column(g.get(), "duration", H5T_NATIVE_DOUBLE, &nan, "duration");
  column(g.get(), "run", H5T_NATIVE_INT64, nullptr, "run");
  virtual_column(g.get(), "error", str.get(), nullptr, sources, rows, "/" + path + "/error",
                 has_errors);
  for (const auto& [sub, fields] :
       {std::pair<std::string, const std::vector<Field>*>{"params", &job.params},
        {"results", &job.results}}) {
    if (fields->empty()) continue;
    h5::Handle sg = h5::create_group(g.get(), sub);
    for (const Field& f : *fields) {
      h5::Handle t = field_type(f.type);
      const auto has = [&, &sub = sub](const ViewSource& s) {
        const auto it = s.fields.find(id);
        return it != s.fields.end() && it->second.count(sub + "/" + f.name) != 0;
      };
      virtual_column(sg.get(), f.name, t.get(), f.type == FieldType::float64 ? &nan : nullptr,
                     sources, rows, "/" + path + "/" + sub + "/" + f.name, has);
      h5::Handle d(
          h5::check_id(H5Dopen2(sg.get(), f.name.c_str(), H5P_DEFAULT), "H5Dopen2", f.name));
      h5::write_attr(d.get(), "units", f.unit);
      h5::write_attr(d.get(), "description", f.description);
    }
  }
}

}  // namespace

void write_view(const std::filesystem::path& path, const std::vector<ViewSource>& sources,
                const std::vector<JobInfo>& jobs, const std::vector<RunInfo>& runs,
                const std::function<void(const std::filesystem::path&)>& before_rename) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  try {
    {
      h5::Handle file = h5::create_file(tmp.string(), /*virtual_datasets=*/true);
      h5::write_attr(file.get(), "mpibatch_format", kStoreFormat);
      h5::write_attr(file.get(), "mpibatch_version", std::string(MPIBATCH_VERSION));
      h5::write_attr(file.get(), "mpibatch_view", std::int64_t{1});
      h5::create_group(file.get(), "jobs");
      for (const JobInfo& job : jobs) job_group(file.get(), job, sources);
      h5::Handle rg = h5::create_group(file.get(), "runs");
      for (const RunInfo& run : runs) {
        h5::Handle g = h5::create_group(rg.get(), std::to_string(run.id));
        write_run_attrs(g.get(), run);
        h5::Handle key = h5::key_type();
        const RowsOf rows = [&run](const ViewSource& s) {
          const auto it = s.tasks.find(run.id);
          return it == s.tasks.end() ? hsize_t{0} : it->second;
        };
        virtual_column(g.get(), "tasks", key.get(), nullptr, sources, rows,
                       "/runs/" + std::to_string(run.id) + "/tasks");
      }
      h5::check(H5Fclose(file.release()), "H5Fclose", tmp.string());
    }  // every handle closed: HDF5 closes the file only with the last of them
    before_rename(tmp);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
  atomic_replace(tmp, path);
}

bool is_view(hid_t file) {
  return h5::has_attr(file, "mpibatch_view");
}

std::vector<std::string> check_view(const std::filesystem::path& path,
                                    const std::vector<ViewSource>& sources,
                                    const std::vector<JobInfo>& jobs) {
  std::vector<std::string> out;
  try {
    const h5::Handle file = h5::open_file_read(path.string());
    if (!is_view(file.get())) return {"not the store's view (the next writer writes it anew)"};
    for (const JobInfo& job : jobs) {
      hsize_t want = 0;
      for (const auto& s : sources) {
        const auto it = s.rows.find({job.name, job.version});
        if (it != s.rows.end()) want += it->second;
      }
      const std::string name = group_path(job.id()) + "/status";
      if (!h5::exists(file.get(), group_path(job.id()))) {
        if (want > 0) out.push_back("has no " + group_path(job.id()));
        continue;
      }
      const h5::Handle d(
          h5::check_id(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), "H5Dopen2", name));
      const hsize_t rows = h5::dataset_size(d.get());
      if (rows != want) {
        out.push_back(name + " has " + std::to_string(rows) + " rows, the tables " +
                      std::to_string(want));
        continue;
      }
      std::vector<std::int8_t> status(rows);
      const h5::Handle t = h5::view_status_type();
      if (rows > 0) h5::read_rows(d.get(), t.get(), 0, rows, status.data());
      const auto missing = std::count(status.begin(), status.end(), std::int8_t{-1});
      if (missing > 0)
        out.push_back(name + ": " + std::to_string(missing) +
                      " rows read as missing (a table is gone)");
    }
  } catch (const Error& e) {
    out.push_back(e.what());
  }
  return out;
}

}  // namespace mpibatch::detail
