#include "hdf5/hdf5.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "mpibatch/error.hpp"

namespace mpibatch::detail::h5 {

namespace {

herr_t collect(unsigned n, const H5E_error2_t* err, void* client) {
  auto* out = static_cast<std::string*>(client);
  if (n > 0) *out += "; ";
  *out += err->func_name ? err->func_name : "?";
  *out += ": ";
  *out += err->desc ? err->desc : "?";
  return 0;
}

// HDF5's error stack as one line, cleared.
std::string take_error_stack() {
  std::string stack;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect, &stack);
  H5Eclear2(H5E_DEFAULT);
  return stack;
}

[[noreturn]] void fail(const char* routine, const std::string& what) {
  const std::string stack = take_error_stack();
  std::string msg = std::string(routine);
  if (!what.empty()) msg += "(" + what + ")";
  msg += " failed";
  if (!stack.empty()) msg += ": " + stack;
  throw Hdf5Error(msg);
}

Handle enum_type(const char* zero, const char* one) {
  Handle t(check_id(H5Tenum_create(H5T_NATIVE_INT8), "H5Tenum_create"));
  std::int8_t v = 0;
  check(H5Tenum_insert(t.get(), zero, &v), "H5Tenum_insert", zero);
  v = 1;
  check(H5Tenum_insert(t.get(), one, &v), "H5Tenum_insert", one);
  return t;
}

Handle scalar_attr(hid_t obj, const std::string& name, hid_t type) {
  Handle space(check_id(H5Screate(H5S_SCALAR), "H5Screate"));
  return Handle(check_id(H5Acreate2(obj, name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                         "H5Acreate2", name));
}

Handle file_access() {
  Handle fapl(check_id(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate"));
  check(H5Pset_file_locking(fapl.get(), false, true), "H5Pset_file_locking");
  return fapl;
}

}  // namespace

void init() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Files are opened without HDF5's own locks (the store has its own);
    // files HDF5 opens by itself, a view's tables, must be opened alike, or
    // HDF5 refuses a file this process holds already and reads it as missing.
    ::setenv("HDF5_USE_FILE_LOCKING", "FALSE", 1);
    H5open();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  });
}

void quiet_this_thread() {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

herr_t check(herr_t status, const char* routine, const std::string& what) {
  if (status < 0) fail(routine, what);
  return status;
}
hid_t check_id(hid_t id, const char* routine, const std::string& what) {
  if (id < 0) fail(routine, what);
  return id;
}
htri_t check_tri(htri_t value, const char* routine, const std::string& what) {
  if (value < 0) fail(routine, what);
  return value;
}

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0) {
    // Closing cannot be reported from a destructor; flushing errors surface
    // earlier because files are closed explicitly before fsync.
    H5Idec_ref(id_);
    id_ = H5I_INVALID_HID;
  }
}

Handle utf8_string_type() {
  Handle t(check_id(H5Tcopy(H5T_C_S1), "H5Tcopy"));
  check(H5Tset_size(t.get(), H5T_VARIABLE), "H5Tset_size");
  check(H5Tset_cset(t.get(), H5T_CSET_UTF8), "H5Tset_cset");
  return t;
}

Handle bool_type() {
  return enum_type("FALSE", "TRUE");
}
Handle status_type() {
  return enum_type("ok", "failed");
}

Handle view_status_type() {
  Handle t = status_type();
  const std::int8_t v = -1;
  check(H5Tenum_insert(t.get(), "missing", &v), "H5Tenum_insert", "missing");
  return t;
}

Handle key_type() {
  Handle t(check_id(H5Tcreate(H5T_COMPOUND, 16), "H5Tcreate"));
  check(H5Tinsert(t.get(), "hi", 0, H5T_NATIVE_UINT64), "H5Tinsert", "hi");
  check(H5Tinsert(t.get(), "lo", 8, H5T_NATIVE_UINT64), "H5Tinsert", "lo");
  return t;
}

Handle create_file(const std::string& path, bool virtual_datasets) {
  init();
  Handle fapl = file_access();
  // Tables: the oldest format that has what we use, so older HDF5 and h5py
  // read them. Virtual datasets need 1.10's.
  check(virtual_datasets ? H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110)
                         : H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_EARLIEST, H5F_LIBVER_V18),
        "H5Pset_libver_bounds");
  // A leftover goes first; then O_EXCL: never through a link planted at path.
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    throw IoError("unlink " + path + ": " + std::strerror(errno));
  return Handle(
      check_id(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()), "H5Fcreate", path));
}

int file_descriptor(hid_t file) {
  Handle fapl(check_id(H5Fget_access_plist(file), "H5Fget_access_plist"));
  if (H5Pget_driver(fapl.get()) != H5FD_SEC2) return -1;
  void* handle = nullptr;
  check(H5Fget_vfd_handle(file, H5P_DEFAULT, &handle), "H5Fget_vfd_handle");
  return *static_cast<int*>(handle);
}

Handle open_file_read(const std::string& path) {
  init();
  Handle fapl = file_access();
  return Handle(check_id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), "H5Fopen", path));
}

Handle create_group(hid_t parent, const std::string& name) {
  Handle lcpl(check_id(H5Pcreate(H5P_LINK_CREATE), "H5Pcreate"));
  check(H5Pset_create_intermediate_group(lcpl.get(), 1), "H5Pset_create_intermediate_group");
  check(H5Pset_char_encoding(lcpl.get(), H5T_CSET_UTF8), "H5Pset_char_encoding");
  return Handle(check_id(H5Gcreate2(parent, name.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
                         "H5Gcreate2", name));
}

Handle open_group(hid_t parent, const std::string& name) {
  return Handle(check_id(H5Gopen2(parent, name.c_str(), H5P_DEFAULT), "H5Gopen2", name));
}

bool exists(hid_t parent, const std::string& name) {
  // H5Lexists fails (not false) when a group on the way is missing: test each prefix.
  for (std::size_t slash = name.find('/', 1); slash != std::string::npos;
       slash = name.find('/', slash + 1)) {
    const std::string prefix = name.substr(0, slash);
    if (check_tri(H5Lexists(parent, prefix.c_str(), H5P_DEFAULT), "H5Lexists", prefix) <= 0)
      return false;
  }
  return check_tri(H5Lexists(parent, name.c_str(), H5P_DEFAULT), "H5Lexists", name) > 0;
}

std::vector<std::string> child_names(hid_t group) {
  std::vector<std::string> names;
  auto visit = [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
    static_cast<std::vector<std::string>*>(data)->emplace_back(name);
    return 0;
  };
  check(H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, nullptr, visit, &names), "H5Literate");
  return names;
}

void write_attr(hid_t obj, const std::string& name, std::int64_t value) {
  Handle a = scalar_attr(obj, name, H5T_NATIVE_INT64);
  check(H5Awrite(a.get(), H5T_NATIVE_INT64, &value), "H5Awrite", name);
}

void write_attr(hid_t obj, const std::string& name, double value) {
  Handle a = scalar_attr(obj, name, H5T_NATIVE_DOUBLE);
  check(H5Awrite(a.get(), H5T_NATIVE_DOUBLE, &value), "H5Awrite", name);
}

void write_attr(hid_t obj, const std::string& name, const std::string& value) {
  Handle t = utf8_string_type();
  Handle a = scalar_attr(obj, name, t.get());
  const char* p = value.c_str();
  check(H5Awrite(a.get(), t.get(), &p), "H5Awrite", name);
}

void write_attr(hid_t obj, const std::string& name, const std::vector<std::string>& values) {
  Handle t = utf8_string_type();
  const hsize_t n = values.size();
  Handle space(check_id(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
  Handle a(check_id(H5Acreate2(obj, name.c_str(), t.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                    "H5Acreate2", name));
  if (values.empty()) return;  // a zero-length attribute: nothing to write
  std::vector<const char*> ptrs;
  ptrs.reserve(values.size());
  for (const auto& v : values) ptrs.push_back(v.c_str());
  check(H5Awrite(a.get(), t.get(), ptrs.data()), "H5Awrite", name);
}

void write_attr(hid_t obj, const std::string& name, const std::vector<std::int64_t>& values) {
  const hsize_t n = values.size();
  Handle space(check_id(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
  Handle a(check_id(
      H5Acreate2(obj, name.c_str(), H5T_NATIVE_INT64, space.get(), H5P_DEFAULT, H5P_DEFAULT),
      "H5Acreate2", name));
  if (values.empty()) return;
  check(H5Awrite(a.get(), H5T_NATIVE_INT64, values.data()), "H5Awrite", name);
}

bool has_attr(hid_t obj, const std::string& name) {
  return check_tri(H5Aexists(obj, name.c_str()), "H5Aexists", name) > 0;
}

namespace {
// Attribute name of obj, which must hold one value: H5Aread writes every
// value an attribute holds, and these callers have room for one.
Handle open_one_value(hid_t obj, const std::string& name) {
  Handle a(check_id(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "H5Aopen", name));
  Handle space(check_id(H5Aget_space(a.get()), "H5Aget_space", name));
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n != 1)
    throw Hdf5Error("attribute " + name + " holds " + std::to_string(n) + " values, not one");
  return a;
}
}  // namespace

std::int64_t read_attr_int(hid_t obj, const std::string& name) {
  Handle a = open_one_value(obj, name);
  std::int64_t v = 0;
  check(H5Aread(a.get(), H5T_NATIVE_INT64, &v), "H5Aread", name);
  return v;
}

double read_attr_double(hid_t obj, const std::string& name) {
  Handle a = open_one_value(obj, name);
  double v = 0;
  check(H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v), "H5Aread", name);
  return v;
}

std::string read_attr_string(hid_t obj, const std::string& name) {
  Handle a = open_one_value(obj, name);
  Handle t = utf8_string_type();
  char* p = nullptr;
  check(H5Aread(a.get(), t.get(), &p), "H5Aread", name);
  std::string out = p ? p : "";
  H5free_memory(p);
  return out;
}

std::vector<std::string> read_attr_strings(hid_t obj, const std::string& name) {
  Handle a(check_id(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "H5Aopen", name));
  Handle space(check_id(H5Aget_space(a.get()), "H5Aget_space", name));
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0) check(-1, "H5Sget_simple_extent_npoints", name);
  if (n == 0) return {};
  std::vector<char*> ptrs(static_cast<std::size_t>(n), nullptr);
  Handle t = utf8_string_type();
  check(H5Aread(a.get(), t.get(), ptrs.data()), "H5Aread", name);
  std::vector<std::string> out;
  out.reserve(ptrs.size());
  for (char* p : ptrs) {
    out.emplace_back(p ? p : "");
    H5free_memory(p);
  }
  return out;
}

std::vector<std::int64_t> read_attr_ints(hid_t obj, const std::string& name) {
  Handle a(check_id(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "H5Aopen", name));
  Handle space(check_id(H5Aget_space(a.get()), "H5Aget_space", name));
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0 || n > (hssize_t{1} << 24)) check(-1, "H5Sget_simple_extent_npoints", name);
  std::vector<std::int64_t> out(static_cast<std::size_t>(n));
  if (n > 0) check(H5Aread(a.get(), H5T_NATIVE_INT64, out.data()), "H5Aread", name);
  return out;
}

Column::Column(hid_t parent, const std::string& name, hid_t type, hsize_t chunk_rows, int deflate)
    : name_(name) {
  const hsize_t zero = 0, unlimited = H5S_UNLIMITED;
  Handle space(check_id(H5Screate_simple(1, &zero, &unlimited), "H5Screate_simple"));
  Handle dcpl(check_id(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate"));
  check(H5Pset_chunk(dcpl.get(), 1, &chunk_rows), "H5Pset_chunk", name);
  if (deflate > 0) {
    check(H5Pset_shuffle(dcpl.get()), "H5Pset_shuffle", name);
    check(H5Pset_deflate(dcpl.get(), static_cast<unsigned>(deflate)), "H5Pset_deflate", name);
  }
  // Last, so that it covers the bytes as stored; readers (h5py too) check
  // it. HDF5 refuses it for variable-length strings, whose bytes are in the
  // file's heap anyway: the table's digest covers those.
  if (check_tri(H5Tis_variable_str(type), "H5Tis_variable_str", name) <= 0)
    check(H5Pset_fletcher32(dcpl.get()), "H5Pset_fletcher32", name);
  dset_ = Handle(check_id(
      H5Dcreate2(parent, name.c_str(), type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
      "H5Dcreate2", name));
}

void Column::append(hid_t mem_type, const void* data, hsize_t count) {
  if (count == 0) return;
  const hsize_t new_size = size_ + count;
  check(H5Dset_extent(dset_.get(), &new_size), "H5Dset_extent", name_);
  Handle file_space(check_id(H5Dget_space(dset_.get()), "H5Dget_space", name_));
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &size_, nullptr, &count, nullptr),
        "H5Sselect_hyperslab", name_);
  Handle mem_space(check_id(H5Screate_simple(1, &count, nullptr), "H5Screate_simple"));
  check(H5Dwrite(dset_.get(), mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, data),
        "H5Dwrite", name_);
  size_ = new_size;
}

hsize_t dataset_size(hid_t dset) {
  Handle space(check_id(H5Dget_space(dset), "H5Dget_space"));
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0) check(-1, "H5Sget_simple_extent_npoints");
  return static_cast<hsize_t>(n);
}

std::string name_of(hid_t obj) {
  char file[4096] = "?", name[4096] = "?";
  if (H5Fget_name(obj, file, sizeof file) < 0) H5Eclear2(H5E_DEFAULT);
  if (H5Iget_name(obj, name, sizeof name) < 0) H5Eclear2(H5E_DEFAULT);
  return std::string(file) + ":" + name;
}

namespace {

// A failed read names the file, the dataset and the rows; a chunk that
// fails its checksum is damage, not an HDF5 fault.
[[noreturn]] void fail_read(hid_t dset, const std::string& rows) {
  const std::string stack = take_error_stack();
  const std::string where = name_of(dset) + ": " + rows;
  if (stack.find("Fletcher32") != std::string::npos || stack.find("checksum") != std::string::npos)
    throw StoreCorruptError(where + " are damaged (a chunk fails its checksum)");
  throw Hdf5Error("H5Dread(" + where + ") failed: " + stack);
}

}  // namespace

void read_rows(hid_t dset, hid_t mem_type, hsize_t start, hsize_t count, void* data) {
  if (count == 0) return;
  Handle file_space(check_id(H5Dget_space(dset), "H5Dget_space"));
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr),
        "H5Sselect_hyperslab");
  Handle mem_space(check_id(H5Screate_simple(1, &count, nullptr), "H5Screate_simple"));
  if (H5Dread(dset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, data) < 0)
    fail_read(dset, "rows " + std::to_string(start) + " to " + std::to_string(start + count - 1));
}

void read_points(hid_t dset, hid_t mem_type, const std::vector<hsize_t>& rows, void* data) {
  if (rows.empty()) return;
  Handle file_space(check_id(H5Dget_space(dset), "H5Dget_space"));
  check(H5Sselect_elements(file_space.get(), H5S_SELECT_SET, rows.size(), rows.data()),
        "H5Sselect_elements");
  const hsize_t n = rows.size();
  Handle mem_space(check_id(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
  if (H5Dread(dset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, data) < 0)
    fail_read(dset, std::to_string(n) + " rows from " + std::to_string(rows.front()));
}

void reclaim(hid_t mem_type, void* data, hsize_t count) {
  if (count == 0) return;
  Handle space(check_id(H5Screate_simple(1, &count, nullptr), "H5Screate_simple"));
  check(H5Dvlen_reclaim(mem_type, space.get(), H5P_DEFAULT, data), "H5Dvlen_reclaim");
}

}  // namespace mpibatch::detail::h5
