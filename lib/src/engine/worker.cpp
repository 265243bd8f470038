// A worker rank's loop (ranks 1..N-1): batches in, results out.
#include <chrono>
#include <deque>

#include "engine/channel.hpp"
#include "mpi/messaging.hpp"

namespace mpibatch::detail {

void serve(const Environment& env, const ComputeFn& compute_batch) {
  mpi::Outbox outbox(env.comm());
  std::deque<std::string> batches;  // received, not yet computed: one in hand
  mpi::Message msg;
  bool stop = false;
  while (!stop) {
    // Take what has arrived; wait (sleeping) only when there is nothing to do.
    while (mpi::try_receive(env.comm(), msg)) {
      if (msg.tag == kTagStop)
        stop = true;
      else
        batches.push_back(std::move(msg.data));
    }
    if (stop) break;  // batches still queued were dropped by a stopping master
    if (batches.empty()) {
      if (mpi::receive_within(env.comm(), std::chrono::milliseconds(100), msg)) {
        if (msg.tag == kTagStop)
          stop = true;
        else
          batches.push_back(std::move(msg.data));
      }
      continue;
    }
    const Batch batch = from_bytes<Batch>(batches.front());
    batches.pop_front();
    outbox.send(0, kTagResults, to_bytes(compute_batch(batch)));
    outbox.reap();
  }
  // The master drains results until it has every worker's goodbye.
  outbox.drain(std::chrono::hours(1));
  outbox.send(0, kTagBye, std::string());
  outbox.drain(std::chrono::hours(1));
}

}  // namespace mpibatch::detail
