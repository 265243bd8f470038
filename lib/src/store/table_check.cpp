// TableReader::check_data: every byte of a table's datasets read back, so
// that each chunk's checksum is checked (what `mpibatch verify` does).
#include <string>
#include <vector>

#include "mpibatch/error.hpp"
#include "store/table.hpp"

namespace mpibatch::detail {

namespace {

herr_t collect_dataset(hid_t, const char* name, const H5O_info_t* info, void* out) {
  if (info->type == H5O_TYPE_DATASET) static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

constexpr std::size_t kMaxReported = 16;

}  // namespace

std::vector<std::string> TableReader::check_data() const {
  std::vector<std::string> paths, out;
  h5::check(H5Ovisit(file_.get(), H5_INDEX_NAME, H5_ITER_NATIVE, collect_dataset, &paths),
            "H5Ovisit", path_.string());
  std::vector<char> buf;
  for (const std::string& p : paths) {
    try {
      h5::Handle ds(h5::check_id(H5Dopen2(file_.get(), p.c_str(), H5P_DEFAULT), "H5Dopen2", p));
      h5::Handle type(h5::check_id(H5Dget_type(ds.get()), "H5Dget_type", p));
      const bool vlen = h5::check_tri(H5Tis_variable_str(type.get()), "H5Tis_variable_str") > 0;
      h5::Handle mem(vlen ? h5::check_id(H5Tcopy(type.get()), "H5Tcopy")
                          : h5::check_id(H5Tget_native_type(type.get(), H5T_DIR_ASCEND),
                                         "H5Tget_native_type", p));
      h5::Handle dcpl(h5::check_id(H5Dget_create_plist(ds.get()), "H5Dget_create_plist", p));
      hsize_t step = hsize_t{1} << 16;
      if (H5Pget_layout(dcpl.get()) == H5D_CHUNKED)
        h5::check(H5Pget_chunk(dcpl.get(), 1, &step), "H5Pget_chunk", p);
      const hsize_t n = h5::dataset_size(ds.get());
      const std::size_t elem = H5Tget_size(mem.get());
      buf.resize(static_cast<std::size_t>(std::min(n, step)) * elem);
      for (hsize_t at = 0; at < n && out.size() < kMaxReported; at += step) {
        const hsize_t count = std::min(step, n - at);
        try {
          h5::read_rows(ds.get(), mem.get(), at, count, buf.data());
          if (vlen) h5::reclaim(mem.get(), buf.data(), count);
        } catch (const StoreCorruptError& e) {
          out.emplace_back(e.what());
        }
      }
    } catch (const Error& e) {
      out.emplace_back(e.what());
    }
    if (out.size() >= kMaxReported) break;
  }
  return out;
}

}  // namespace mpibatch::detail
