// Refusing to write a job's output over its input.
#pragma once

#include <sys/stat.h>

#include <string>

#include "mpibatch/error.hpp"

namespace mpibatch::jobs {

// Throws UsageError naming both options when output is input: the same
// file or folder (compared by device and inode, so through links and
// spellings too). An output that does not exist yet is never the input.
inline void refuse_same_file(const std::string& input_option, const std::string& input,
                             const std::string& output_option, const std::string& output) {
  struct stat in {
  }, out{};
  if (::stat(input.c_str(), &in) != 0 || ::stat(output.c_str(), &out) != 0) return;
  if (in.st_dev == out.st_dev && in.st_ino == out.st_ino)
    throw UsageError("--param " + output_option + "=" + output + " is --param " + input_option +
                     "=" + input + " (the same " + (S_ISDIR(in.st_mode) ? "folder" : "file") +
                     "): writing there would destroy the input; choose another output");
}

}  // namespace mpibatch::jobs
