// Checked, RAII access to the HDF5 C API. Every HDF5 call in mpibatch goes
// through check(), which throws Hdf5Error naming the routine and carrying the
// HDF5 error stack; every hid_t lives in a Handle that closes it.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mpibatch::detail::h5 {

// Turns off HDF5's automatic error printing (we report errors ourselves).
// Idempotent and cheap; called before the first HDF5 use.
void init();
// HDF5 prints its error stack on stderr unless told not to, per thread (the
// thread-safe build keeps a stack each): call first in a thread that uses
// HDF5, since errors are thrown with the stack as their text.
void quiet_this_thread();

// Throws Hdf5Error("<routine>(<what>): <stack>") when status < 0.
herr_t check(herr_t status, const char* routine, const std::string& what = {});
hid_t check_id(hid_t id, const char* routine, const std::string& what = {});
htri_t check_tri(htri_t value, const char* routine, const std::string& what = {});

// Owns one hid_t of any kind; H5Idec_ref closes files, groups, datasets,
// dataspaces, types and property lists alike.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  explicit operator bool() const { return id_ >= 0; }
  void reset();
  // Gives up ownership without closing.
  hid_t release() {
    const hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Types as h5py expects them.
Handle utf8_string_type();  // variable-length UTF-8 string
Handle bool_type();         // h5py's bool: int8 enum FALSE=0, TRUE=1
Handle status_type();       // int8 enum ok=0, failed=1
Handle view_status_type();  // the same with missing=-1, a view's fill value
Handle key_type();          // compound {hi: uint64, lo: uint64}

// Files: created without HDF5's own file locking (we lock the store ourselves,
// and these files are immutable once renamed into place).
// virtual_datasets: in HDF5 1.10's file format (needed for them; h5py reads it).
// A file already at path is removed first (a symbolic link there: the link,
// never what it names).
Handle create_file(const std::string& path, bool virtual_datasets = false);
// The file descriptor under a file of the default (sec2) driver, or -1 for
// another driver. Valid while the file is open; HDF5 owns it.
int file_descriptor(hid_t file);
Handle open_file_read(const std::string& path);

Handle create_group(hid_t parent, const std::string& name);
Handle open_group(hid_t parent, const std::string& name);
// Whether the path names an object; false (not an error) when a group on the way is missing.
bool exists(hid_t parent, const std::string& name);
std::vector<std::string> child_names(hid_t group);

// Attributes (scalar unless named otherwise).
void write_attr(hid_t obj, const std::string& name, std::int64_t value);
void write_attr(hid_t obj, const std::string& name, double value);
void write_attr(hid_t obj, const std::string& name, const std::string& value);
void write_attr(hid_t obj, const std::string& name, const std::vector<std::string>& values);
void write_attr(hid_t obj, const std::string& name, const std::vector<std::int64_t>& values);
bool has_attr(hid_t obj, const std::string& name);
std::int64_t read_attr_int(hid_t obj, const std::string& name);
double read_attr_double(hid_t obj, const std::string& name);
std::string read_attr_string(hid_t obj, const std::string& name);
std::vector<std::string> read_attr_strings(hid_t obj, const std::string& name);
std::vector<std::int64_t> read_attr_ints(hid_t obj, const std::string& name);

// A 1-D dataset grown in batches: chunked, unlimited, written with one
// H5Dwrite per batch (never per row).
class Column {
 public:
  // deflate 1-9: chunks are shuffled and deflated (both built into HDF5, so
  // any reader has them); 0: stored as they are.
  Column(hid_t parent, const std::string& name, hid_t type, hsize_t chunk_rows, int deflate = 0);
  // data points at count elements in the memory layout of mem_type.
  void append(hid_t mem_type, const void* data, hsize_t count);
  hid_t id() const { return dset_.get(); }
  hsize_t size() const { return size_; }

 private:
  Handle dset_;
  std::string name_;
  hsize_t size_ = 0;
};

// Reads count rows starting at start of a 1-D dataset into data (mem_type layout).
// Throws StoreCorruptError naming the file, dataset and rows when a chunk
// fails its checksum, else Hdf5Error.
void read_rows(hid_t dset, hid_t mem_type, hsize_t start, hsize_t count, void* data);
// "file:/dataset" of an open object, for messages.
std::string name_of(hid_t obj);
// Reads the rows listed (ascending or not) into data, one H5Dread for all.
void read_points(hid_t dset, hid_t mem_type, const std::vector<hsize_t>& rows, void* data);
hsize_t dataset_size(hid_t dset);

// Frees the variable-length memory HDF5 allocated while reading count elements.
void reclaim(hid_t mem_type, void* data, hsize_t count);

}  // namespace mpibatch::detail::h5
