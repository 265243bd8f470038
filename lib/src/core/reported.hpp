// Whether this process has printed the error it is failing with: a rank that
// must say why before other ranks exit (and mpirun kills it) says so here,
// and the command does not print the same error again. The exception goes on
// with its own type, so that callers of the API catch what they expect.
#pragma once

#include <atomic>

namespace mpibatch::detail {

inline std::atomic<bool>& error_reported() {
  static std::atomic<bool> reported{false};
  return reported;
}

}  // namespace mpibatch::detail
