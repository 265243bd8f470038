// The jobs the mpibatch command ships with (see `mpibatch jobs`).
#pragma once

namespace mpibatch::jobs {

// Registers pi, sqrt, sleep and exec with the command line. Call once.
void register_builtin_jobs();

}  // namespace mpibatch::jobs
