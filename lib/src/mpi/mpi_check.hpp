// Every MPI call in mpibatch goes through check(), which throws MpiError
// naming the routine and MPI's own error string.
#pragma once

#include <mpi.h>

namespace mpibatch::detail::mpi {

void check(int rc, const char* routine);

}  // namespace mpibatch::detail::mpi
