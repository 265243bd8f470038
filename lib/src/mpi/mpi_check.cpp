#include "mpi/mpi_check.hpp"

#include <string>

#include "mpibatch/error.hpp"

namespace mpibatch::detail::mpi {

void check(int rc, const char* routine) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw MpiError(std::string(routine) +
                 " failed: " + std::string(text, static_cast<std::size_t>(len)));
}

}  // namespace mpibatch::detail::mpi
