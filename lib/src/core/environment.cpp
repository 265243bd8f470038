#include "mpibatch/environment.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "mpi/messaging.hpp"
#include "mpi/mpi_check.hpp"
#include "mpibatch/error.hpp"

namespace mpibatch {

namespace {

// An uncaught exception on one rank would leave the others waiting in MPI
// forever: print it and take the whole job down.
[[noreturn]] void abort_job() {
  int status = kExitRuntime;
  try {
    if (auto e = std::current_exception()) std::rethrow_exception(e);
    std::fprintf(stderr, "mpibatch: terminate called\n");
  } catch (const Error& e) {
    status = e.exit_status();
    std::fprintf(stderr, "mpibatch: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpibatch: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "mpibatch: unknown exception\n");
  }
  std::fflush(stderr);
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, status);
  std::_Exit(status);
}

}  // namespace

Environment::Environment(int& argc, char**& argv) {
  init(&argc, &argv);
}
Environment::Environment() {
  init(nullptr, nullptr);
}

int Environment::broadcast(int value, int root) const {
  detail::mpi::bcast_int(comm(), value, root);
  return value;
}

int Environment::max(int value) const {
  detail::mpi::max_int(comm(), value);
  return value;
}

std::string Environment::broadcast(std::string bytes, int root) const {
  detail::mpi::bcast_bytes(comm(), bytes, root);
  return bytes;
}

void Environment::init(int* argc, char*** argv) {
  int initialized = 0;
  detail::mpi::check(MPI_Initialized(&initialized), "MPI_Initialized");
  if (!initialized) {
    int provided = 0;
    detail::mpi::check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided),
                       "MPI_Init_thread");
    owns_ = true;
  }
  // Errors come back as codes that check() turns into exceptions.
  detail::mpi::check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN),
                     "MPI_Comm_set_errhandler");
  detail::mpi::check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
  detail::mpi::check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  host_ = name;
  std::set_terminate(abort_job);
}

Environment::~Environment() {
  if (!owns_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void Environment::abort(int status) const {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, status);
  std::_Exit(status);
}

}  // namespace mpibatch
