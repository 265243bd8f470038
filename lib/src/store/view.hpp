// The store's view: the file users open (STORE), whose datasets are HDF5
// virtual datasets that join each column over the immutable tables in the
// sidecar, in storage order. h5py and h5dump read it as one file; nothing is
// copied, so a run that adds ten records rewrites a few KB, not the store.
// A table file that has gone missing reads as fill values: status -1
// ("missing" in its enum), NaN times. mpibatch itself never reads the view;
// it reads the tables the MANIFEST lists, and reports a missing one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "hdf5/hdf5.hpp"
#include "mpibatch/store.hpp"

namespace mpibatch::detail {

// One table as the view maps it.
struct ViewSource {
  std::string file;                       // as HDF5 resolves it: relative to the view's folder
  std::map<JobId, hsize_t> rows;          // per job version
  std::map<std::int64_t, hsize_t> tasks;  // per run: task-list rows
  // Job versions whose group has no error column (no row failed): the view
  // reads their rows' errors as its fill value, an empty string.
  std::set<JobId> no_errors;
  // Per job version, the columns its group has ("params/x", "results/y"): a
  // table written before the job's definition was widened lacks the newer
  // ones, which the view reads as their fill values (NaN, 0, false, "").
  std::map<JobId, std::set<std::string>> fields;
};

// Writes the view to path (through path.tmp, fsync'd and renamed), with a
// group per job version and run; before_rename(tmp) runs on the finished file
// just before it replaces the old one. Throws Hdf5Error or IoError naming the file.
void write_view(const std::filesystem::path& path, const std::vector<ViewSource>& sources,
                const std::vector<JobInfo>& jobs, const std::vector<RunInfo>& runs,
                const std::function<void(const std::filesystem::path&)>& before_rename);

// True when the HDF5 file open as file is a view (its root has mpibatch_view).
bool is_view(hid_t file);

// What is wrong with the view at path against the tables it should map:
// not a view, a job version's rows not those of the tables, rows that read
// as missing through it (it reads every status). Empty when sound.
std::vector<std::string> check_view(const std::filesystem::path& path,
                                    const std::vector<ViewSource>& sources,
                                    const std::vector<JobInfo>& jobs);

}  // namespace mpibatch::detail
