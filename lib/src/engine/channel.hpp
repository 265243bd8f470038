// How the master reaches its workers: MPI ranks, or (one rank) itself.
#pragma once

#include <chrono>
#include <memory>

#include "engine/messages.hpp"
#include "mpibatch/environment.hpp"
#include "mpibatch/job.hpp"

namespace mpibatch::detail {

class Channel {
 public:
  virtual ~Channel() = default;
  virtual int workers() const = 0;
  // The MPI rank that worker w runs on (0 when the master computes itself).
  virtual int rank(int w) const = 0;
  // Sends a serialized Batch to worker w (0-based); returns at once.
  virtual void send(int w, Bytes batch) = 0;
  // Waits up to `wait`, without spinning a core, for one worker's serialized
  // ResultBatch; it may notice one up to `max_nap` late. False when none came.
  virtual bool receive(std::chrono::microseconds wait, std::chrono::microseconds max_nap, int& w,
                       Bytes& results) = 0;
  // Tells every worker to stop and waits until `deadline` for each to say so;
  // results that arrive meanwhile go to on_results. False when not every
  // worker said goodbye.
  virtual bool stop(std::chrono::steady_clock::time_point deadline,
                    const std::function<void(int, Bytes&)>& on_results) = 0;
};

// How a computing rank computes a batch: compute(), or in a process of its
// own (IsolatedCompute).
using ComputeFn = std::function<ResultBatch(const Batch&)>;

std::unique_ptr<Channel> make_mpi_channel(const Environment& env);
std::unique_ptr<Channel> make_local_channel(ComputeFn compute_batch);

// A worker rank's loop: batches in, results out, until the master says stop.
void serve(const Environment& env, const ComputeFn& compute_batch);

// Computes a batch (shared by MPI workers and the local channel); a task's
// exception becomes a failed item carrying its message.
ResultBatch compute(const ErasedJob& job, const Batch& batch);

}  // namespace mpibatch::detail
