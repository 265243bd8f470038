// Point-to-point messages of bytes without busy waiting: Open MPI's blocking
// receive polls a core at 100 %, so waiting is a probe, then a short sleep
// that grows (20 us to kMaxNap, or a caller's longer max_nap) while nothing
// comes.
#pragma once

#include <mpi.h>

#include <chrono>
#include <list>
#include <string>

namespace mpibatch::detail::mpi {

// The default longest nap between probes: a message waits up to its
// receiver's nap, so this bounds each exchange's delay, while a wake-up costs
// an idle rank only microseconds (BENCHMARKS.md, tuning constants).
inline constexpr std::chrono::microseconds kMaxNap(1000);

struct Message {
  int source = -1;
  int tag = -1;
  std::string data;
};

// Receives one message if one has arrived; never blocks.
bool try_receive(MPI_Comm comm, Message& out);
// Receives one message, waiting at most `wait` (sleeping, not spinning).
// max_nap: the longest sleep between probes, i.e. how late the caller may
// notice a message; longer naps wake a rank (and preempt the busy rank that
// shares its core) less often. Naps start at 20 us and double, except that a
// max_nap beyond kMaxNap (a caller that can afford to be late) is the first.
bool receive_within(MPI_Comm comm, std::chrono::microseconds wait, Message& out,
                    std::chrono::microseconds max_nap = kMaxNap);

// Waits for a non-blocking operation by testing and sleeping. Ranks that
// wait for a busy rank 0 (opening, checking or compacting a store) must not
// poll a core as Open MPI's blocking collectives do; collectives go through
// their non-blocking form and this.
void wait(MPI_Request& request);
// MPI_Bcast of one int from root, waiting as wait() does.
void bcast_int(MPI_Comm comm, int& value, int root);
// value becomes the largest over comm's ranks.
void max_int(MPI_Comm comm, int& value);
// MPI_Bcast of root's bytes (their size first), waiting as wait() does.
void bcast_bytes(MPI_Comm comm, std::string& bytes, int root);

// Non-blocking sends whose buffers live until MPI is done with them.
class Outbox {
 public:
  explicit Outbox(MPI_Comm comm) : comm_(comm) {}
  ~Outbox();
  void send(int dest, int tag, std::string data);
  // Frees the buffers of completed sends.
  void reap();
  // Waits (sleeping) until every send completed, at most `wait`. False on time-out.
  bool drain(std::chrono::microseconds wait);
  bool empty() const { return pending_.empty(); }

 private:
  struct Pending {
    MPI_Request request;
    std::string data;
  };
  MPI_Comm comm_;
  std::list<Pending> pending_;
};

}  // namespace mpibatch::detail::mpi
