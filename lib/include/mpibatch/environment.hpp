// The MPI environment, RAII style (as Boost.MPI's): construct one in main()
// before anything else mpibatch does, on every rank.
#pragma once

#include <mpi.h>

#include <string>

#include "mpibatch/export.hpp"

namespace mpibatch {

class MPIBATCH_EXPORT Environment {
 public:
  // Initializes MPI (MPI_THREAD_FUNNELED: only the main thread calls MPI)
  // unless it already is, and makes an uncaught exception or std::terminate
  // on any rank print its message and MPI_Abort the whole job instead of
  // leaving the other ranks waiting forever. Throws MpiError.
  Environment(int& argc, char**& argv);
  Environment();
  // Finalizes MPI if this object initialized it.
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  MPI_Comm comm() const { return MPI_COMM_WORLD; }
  // This rank's host name.
  const std::string& host() const { return host_; }
  // Collective: returns root's value on every rank (to agree on an option
  // check's outcome before any work). Waits without spinning. Throws MpiError.
  int broadcast(int value, int root = 0) const;
  std::string broadcast(std::string bytes, int root = 0) const;
  // Collective: the largest of every rank's value (to agree that one rank's
  // check failed). Waits without spinning. Throws MpiError.
  int max(int value) const;
  // Ends every rank of the job with this exit status. Never returns.
  [[noreturn]] void abort(int status) const;

 private:
  void init(int* argc, char*** argv);
  bool owns_ = false;
  int rank_ = 0;
  int size_ = 1;
  std::string host_;
};

}  // namespace mpibatch
