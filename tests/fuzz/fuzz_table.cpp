// libFuzzer target: our readers of what a table (a segment or the base)
// holds: job and run attributes (schema), the rows' columns, result bytes
// by offset and size, task lists, the key index and its block sums
// (TableReader, KeyIndex, CheckedArray). HDF5 may crash on a file whose own
// structure is damaged (the MANIFEST's stamps keep those from it:
// fuzz_segment_file), so the damage here is made through HDF5: the input is
// a list of edits to a real table (values written into a dataset, an
// attribute replaced by one of any type, a dataset replaced by one of
// another length, an attribute or object deleted, an object renamed), then,
// on request, the index's block sums made to match, so that what the sums
// guard is reached too. Then everything a reader reads is read. The first
// byte picks the table: uncompressed (a tagged key index over mapped key
// columns) or compressed (the index holds the keys).
#include <fuzzer/FuzzedDataProvider.h>
#include <hdf5.h>

#include <cstring>

#include "fuzz_support.hpp"
#include "hdf5/hdf5.hpp"
#include "store/block_sums.hpp"
#include "store/manifest.hpp"
#include "store/table.hpp"

namespace {

using namespace mpibatch;
using detail::h5::Handle;

struct Template {
  std::string bytes;
  std::vector<std::string> datasets, objects;              // objects: every link, groups too
  std::vector<std::pair<std::string, std::string>> attrs;  // (object, attribute)
};

herr_t add_attr(hid_t, const char* name, const H5A_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

herr_t add_object(hid_t, const char* name, const H5O_info_t* info, void* out) {
  auto& t = *static_cast<Template*>(out);
  if (info->type == H5O_TYPE_DATASET) t.datasets.push_back(name);
  if (std::string_view(name) != ".") t.objects.push_back(name);
  return 0;
}

Template make_template(bool compressed) {
  Template x;
  const auto store = fuzz::work_dir() / (compressed ? "tbl-deflated.h5" : "tbl.h5");
  fuzz::make_store(store, nullptr, compressed ? 3 : 0);
  const auto m = detail::read_manifest(Store::sidecar(store) / "MANIFEST");
  const auto file = Store::sidecar(store) / m->base_file;
  x.bytes = fuzz::read_bytes(file);
  detail::h5::init();
  Handle f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  H5Ovisit(f.get(), H5_INDEX_NAME, H5_ITER_NATIVE, add_object, &x);
  std::vector<std::string> all = x.objects;
  all.emplace_back(".");
  for (const auto& o : all) {
    std::vector<std::string> names;
    Handle obj(H5Oopen(f.get(), o.c_str(), H5P_DEFAULT));
    H5Aiterate2(obj.get(), H5_INDEX_NAME, H5_ITER_NATIVE, nullptr, add_attr, &names);
    for (auto& n : names) x.attrs.emplace_back(o, std::move(n));
  }
  return x;
}

const Template& table(bool compressed) {
  static const Template t[2] = {make_template(false), make_template(true)};
  return t[compressed ? 1 : 0];
}

template <class T>
const T& pick(FuzzedDataProvider& in, const std::vector<T>& from) {
  return from[in.ConsumeIntegralInRange<std::size_t>(0, from.size() - 1)];
}

// count elements of type: raw bytes from the input, or strings for a
// variable-length string type (then strings holds them).
std::vector<char> values(FuzzedDataProvider& in, hid_t type, hsize_t count,
                         std::vector<std::string>& strings) {
  if (H5Tis_variable_str(type) > 0) {
    std::vector<char> ptrs(count * sizeof(char*));
    strings.clear();
    for (hsize_t i = 0; i < count; ++i) strings.push_back(in.ConsumeRandomLengthString(40));
    for (hsize_t i = 0; i < count; ++i) {
      const char* p = strings[i].c_str();
      std::memcpy(ptrs.data() + i * sizeof p, &p, sizeof p);
    }
    return ptrs;
  }
  std::vector<char> bytes = in.ConsumeBytes<char>(count * H5Tget_size(type));
  bytes.resize(count * H5Tget_size(type));
  return bytes;
}

void write_values(FuzzedDataProvider& in, hid_t file, const std::string& path) {
  Handle ds(H5Dopen2(file, path.c_str(), H5P_DEFAULT));
  if (!ds) return;  // an earlier edit deleted or moved it
  Handle type(H5Dget_type(ds.get())), space(H5Dget_space(ds.get()));
  const auto n = static_cast<hsize_t>(H5Sget_simple_extent_npoints(space.get()));
  if (n == 0) return;
  hsize_t start = in.ConsumeIntegralInRange<hsize_t>(0, n - 1);
  hsize_t count = in.ConsumeIntegralInRange<hsize_t>(1, std::min<hsize_t>(n - start, 16));
  std::vector<std::string> strings;
  const std::vector<char> data = values(in, type.get(), count, strings);
  H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr);
  Handle mem(H5Screate_simple(1, &count, nullptr));
  H5Dwrite(ds.get(), type.get(), mem.get(), space.get(), H5P_DEFAULT, data.data());
}

// The dataset again, of another length, with the same type and layout.
void replace_dataset(FuzzedDataProvider& in, hid_t file, const std::string& path) {
  Handle type, dcpl;
  {
    Handle ds(H5Dopen2(file, path.c_str(), H5P_DEFAULT));
    if (!ds) return;
    type = Handle(H5Dget_type(ds.get()));
    dcpl = Handle(H5Dget_create_plist(ds.get()));
  }
  if (H5Ldelete(file, path.c_str(), H5P_DEFAULT) < 0) return;
  hsize_t n = in.ConsumeIntegralInRange<hsize_t>(0, 40);
  const hsize_t unlimited = H5S_UNLIMITED;
  const bool chunked = H5Pget_layout(dcpl.get()) == H5D_CHUNKED;
  Handle space(H5Screate_simple(1, &n, chunked ? &unlimited : nullptr));
  Handle ds(H5Dcreate2(file, path.c_str(), type.get(), space.get(), H5P_DEFAULT, dcpl.get(),
                       H5P_DEFAULT));
  if (n == 0 || !ds) return;
  std::vector<std::string> strings;
  const std::vector<char> data = values(in, type.get(), n, strings);
  H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data());
}

void replace_attr(FuzzedDataProvider& in, hid_t file, const std::string& object,
                  const std::string& name) {
  Handle obj(H5Oopen(file, object.c_str(), H5P_DEFAULT));
  if (!obj || H5Adelete(obj.get(), name.c_str()) < 0) return;
  switch (in.ConsumeIntegralInRange(0, 4)) {
    case 0:
      detail::h5::write_attr(obj.get(), name, in.ConsumeIntegral<std::int64_t>());
      break;
    case 1:
      detail::h5::write_attr(obj.get(), name, in.ConsumeFloatingPoint<double>());
      break;
    case 2:
      detail::h5::write_attr(obj.get(), name, in.ConsumeRandomLengthString(40));
      break;
    case 3: {
      std::vector<std::string> v(in.ConsumeIntegralInRange(0, 5));
      for (auto& s : v) s = in.ConsumeRandomLengthString(20);
      detail::h5::write_attr(obj.get(), name, v);
      break;
    }
    default: {
      std::vector<std::int64_t> v(in.ConsumeIntegralInRange(0, 5));
      for (auto& x : v) x = in.ConsumeIntegralInRange<std::int64_t>(-2, 40);
      detail::h5::write_attr(obj.get(), name, v);
    }
  }
}

// What damage_support::resum_index does for the unit tests: the index's
// block sums made to match its datasets as they are now.
void resum_index(hid_t file) {
  std::vector<std::string> order{"/index/rows", "/index/buckets"};
  const bool tagged = H5Lexists(file, "/index/tags", H5P_DEFAULT) > 0;
  order.emplace_back(tagged ? "/index/tags" : "/index/keys");
  order.emplace_back("/index/replacing");
  if (tagged) {
    Handle g(H5Gopen2(file, "/index", H5P_DEFAULT));
    for (const auto& p : detail::h5::read_attr_strings(g.get(), "groups"))
      order.push_back(p + "/key");
  }
  std::vector<std::uint64_t> sums;
  for (const auto& name : order) {
    Handle ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT));
    Handle type(H5Dget_type(ds.get())), space(H5Dget_space(ds.get()));
    if (!ds || H5Tis_variable_str(type.get()) != 0) return;
    std::vector<char> bytes(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.get())) *
                            H5Tget_size(type.get()));
    if (!bytes.empty() &&
        H5Dread(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) < 0)
      return;
    detail::BlockSummer summer;
    summer.add(bytes.data(), bytes.size());
    for (auto s : summer.finish()) sums.push_back(s);
  }
  if (H5Lexists(file, "/index/block_sums", H5P_DEFAULT) > 0)
    H5Ldelete(file, "/index/block_sums", H5P_DEFAULT);
  hsize_t n = sums.size();
  Handle space(H5Screate_simple(1, &n, nullptr));
  Handle ds(H5Dcreate2(file, "/index/block_sums", H5T_NATIVE_UINT64, space.get(), H5P_DEFAULT,
                       H5P_DEFAULT, H5P_DEFAULT));
  if (ds && n > 0)
    H5Dwrite(ds.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, sums.data());
}

void one_edit(FuzzedDataProvider& in, hid_t f, const Template& t) {
  switch (in.ConsumeIntegralInRange(0, 5)) {
    case 0:
      write_values(in, f, pick(in, t.datasets));
      break;
    case 1:
      replace_dataset(in, f, pick(in, t.datasets));
      break;
    case 2: {
      const auto& [object, name] = pick(in, t.attrs);
      replace_attr(in, f, object, name);
      break;
    }
    case 3: {
      const auto& [object, name] = pick(in, t.attrs);
      H5Adelete_by_name(f, object.c_str(), name.c_str(), H5P_DEFAULT);
      break;
    }
    case 4:
      H5Ldelete(f, pick(in, t.objects).c_str(), H5P_DEFAULT);
      break;
    default: {
      const std::string& from = pick(in, t.objects);
      const std::string name = in.ConsumeRandomLengthString(12);
      const auto slash = from.rfind('/');
      const std::string to =
          (slash == std::string::npos ? std::string() : from.substr(0, slash + 1)) + name;
      if (!name.empty() && name.find('/') == std::string::npos && name != "." && name != "..")
        H5Lmove(f, from.c_str(), f, to.c_str(), H5P_DEFAULT, H5P_DEFAULT);
    }
  }
}

void edit(FuzzedDataProvider& in, const std::string& path, const Template& t) {
  Handle f(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
  if (!f) return;
  for (int e = 0; e < 8 && in.remaining_bytes() > 0; ++e) {
    try {
      one_edit(in, f.get(), t);
    } catch (const Error&) {  // an edit HDF5 refused: the table stays as it was
    }
  }
  if (in.ConsumeBool()) {
    try {
      resum_index(f.get());
    } catch (const Error&) {  // an attribute the edits made unreadable: no sums then
    }
  }
}

void read_table(const std::string& path) {
  const detail::TableReader tr(path);
  for (std::size_t g = 0; g < tr.groups().size(); ++g) {
    const hsize_t rows = tr.groups()[g].rows;
    (void)tr.narrow_columns(g);
    (void)tr.read_range(g, 0, std::min<hsize_t>(rows, 64));
    if (rows > 0) (void)tr.read_rows(g, {rows - 1, 0});
  }
  for (const auto& [run, rows] : tr.task_rows()) {
    std::vector<TaskKey> keys;
    tr.read_tasks(run, keys);
  }
  (void)tr.check_index();
  (void)tr.check_data();
  const detail::KeyIndex& x = tr.key_index();
  for (std::uint64_t i = 0; i < 14; ++i) (void)x.find(fuzz::fuzz_key(i));
  (void)x.check();
  (void)x.keys();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  table(false);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = (fuzz::work_dir() / "edited.h5").string();
  FuzzedDataProvider in(data, size);
  const Template& t = table(in.ConsumeBool());
  fuzz::write_file(path, t.bytes);
  edit(in, path, t);
  try {
    read_table(path);
  } catch (const Error&) {
  }
  return 0;
}
