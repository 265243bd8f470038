// The jobs the mpibatch command ships with (see `mpibatch jobs`).
#pragma once

#include <string>

namespace mpibatch::jobs {

// Registers pi, sqrt, sleep, exec, csv_classify, image_resize and python with the command
// line. Call once.
void register_builtin_jobs();

// csv_classify's work done serially, in one process: the reference its
// output must equal byte for byte. Throws UsageError for a malformed file.
void csv_classify_serial(const std::string& input, const std::string& output);

}  // namespace mpibatch::jobs
