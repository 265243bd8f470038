// --isolate: a worker's batches computed in a process of its own, so that a
// task that crashes it fails alone and the run goes on. The process is the
// same program started again with posix_spawn (never fork after MPI_Init,
// which some interconnects do not survive), told by kComputeProcessEnv to
// serve batches on two pipes: length-prefixed Batch in, ResultBatch out.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "engine/messages.hpp"
#include "mpibatch/job.hpp"

namespace mpibatch::detail {

// Set (to "3,4": the input and output descriptors) in a compute process's
// environment.
inline constexpr char kComputeProcessEnv[] = "MPIBATCH_COMPUTE_PROCESS";

class IsolatedCompute {
 public:
  // argv: the program and arguments that, with kComputeProcessEnv set,
  // serve batches (serve_compute_process); hello: bytes sent to each new
  // process first. Starts nothing until the first batch.
  // task_timeout (seconds; 0: none): a batch of n tasks that takes longer
  // than n times it is ended (SIGKILL) and its tasks run alone, each ended
  // and failed ("timed out after ...") past task_timeout.
  IsolatedCompute(const ErasedJob& job, std::vector<std::string> argv, std::string hello,
                  double task_timeout);
  ~IsolatedCompute();
  IsolatedCompute(const IsolatedCompute&) = delete;
  IsolatedCompute& operator=(const IsolatedCompute&) = delete;

  // The batch's results. When the process dies in it, each task runs again
  // alone in a new process: one that dies again is a failed row ("crashed
  // its worker: signal 11 (SIGSEGV)", or its exit status); the others are
  // their results. Throws Error when no process can be started.
  ResultBatch compute(const Batch& batch);

 private:
  void start();
  void stop();
  // Sends batch, waits for its results; false (why says) when the process died.
  bool exchange(const Batch& batch, ResultBatch& out, std::string& why);

  const ErasedJob& job_;
  std::vector<std::string> argv_;
  std::string hello_;
  double task_timeout_ = 0;
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
};

// The program IsolatedCompute starts: /proc/self/exe unless set (before any
// run) by a command hosted in another program; the file at path when this
// is called, even if it is replaced later.
void set_compute_program(const std::string& path);

// In a compute process: the hello, read first (the job may need it to be built).
std::string read_compute_hello();
// In a compute process: computes batches until its input closes; returns the
// exit status (0, or 1 after an error it printed).
int serve_compute_process(const ErasedJob& job);

}  // namespace mpibatch::detail
