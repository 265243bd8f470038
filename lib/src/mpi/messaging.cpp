#include "mpi/messaging.hpp"

#include <thread>

#include "mpi/mpi_check.hpp"
#include "mpibatch/error.hpp"

namespace mpibatch::detail::mpi {

bool try_receive(MPI_Comm comm, Message& out) {
  int flag = 0;
  MPI_Message msg;
  MPI_Status status;
  check(MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm, &flag, &msg, &status), "MPI_Improbe");
  if (!flag) return false;
  int count = 0;
  check(MPI_Get_count(&status, MPI_BYTE, &count), "MPI_Get_count");
  out.source = status.MPI_SOURCE;
  out.tag = status.MPI_TAG;
  out.data.resize(static_cast<std::size_t>(count));
  check(MPI_Mrecv(out.data.data(), count, MPI_BYTE, &msg, MPI_STATUS_IGNORE), "MPI_Mrecv");
  return true;
}

namespace {
using Clock = std::chrono::steady_clock;

// Sleeps between calls of done() (20 us doubling to max_nap; max_nap at once
// when beyond kMaxNap) until it is true or the deadline passes; returns the
// last answer.
template <class Done>
bool wait_until(Clock::time_point deadline, Done&& done,
                std::chrono::microseconds max_nap = kMaxNap) {
  std::chrono::microseconds nap =
      max_nap > kMaxNap ? max_nap : std::min(std::chrono::microseconds(20), max_nap);
  for (;;) {
    if (done()) return true;
    const auto now = Clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(nap, deadline - now));
    nap = std::min(nap * 2, max_nap);
  }
}
}  // namespace

bool receive_within(MPI_Comm comm, std::chrono::microseconds wait, Message& out,
                    std::chrono::microseconds max_nap) {
  return wait_until(
      Clock::now() + wait, [&] { return try_receive(comm, out); }, max_nap);
}

void wait(MPI_Request& request) {
  wait_until(Clock::time_point::max(), [&] {
    int done = 0;
    check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "MPI_Test");
    return done != 0;
  });
}

void bcast_int(MPI_Comm comm, int& value, int root) {
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Ibcast(&value, 1, MPI_INT, root, comm, &request), "MPI_Ibcast");
  wait(request);
}

void max_int(MPI_Comm comm, int& value) {
  const int mine = value;
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Iallreduce(&mine, &value, 1, MPI_INT, MPI_MAX, comm, &request), "MPI_Iallreduce");
  wait(request);
}

void bcast_bytes(MPI_Comm comm, std::string& bytes, int root) {
  if (bytes.size() > static_cast<std::size_t>(INT32_MAX))
    throw MpiError("a broadcast of " + std::to_string(bytes.size()) + " bytes is over 2 GiB");
  int size = static_cast<int>(bytes.size());
  bcast_int(comm, size, root);
  bytes.resize(static_cast<std::size_t>(size));
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Ibcast(bytes.data(), size, MPI_BYTE, root, comm, &request), "MPI_Ibcast");
  wait(request);
}

Outbox::~Outbox() {
  // Cancel what never completed (only on error paths: normal ends drain first).
  for (auto& p : pending_) {
    MPI_Cancel(&p.request);
    MPI_Request_free(&p.request);
  }
}

void Outbox::send(int dest, int tag, std::string data) {
  if (data.size() > static_cast<std::size_t>(INT32_MAX)) {
    throw MpiError("a message of " + std::to_string(data.size()) +
                   " bytes is over MPI's 2 GiB limit");
  }
  pending_.push_back(Pending{MPI_REQUEST_NULL, std::move(data)});
  Pending& p = pending_.back();
  check(MPI_Isend(p.data.data(), static_cast<int>(p.data.size()), MPI_BYTE, dest, tag, comm_,
                  &p.request),
        "MPI_Isend");
}

void Outbox::reap() {
  for (auto it = pending_.begin(); it != pending_.end();) {
    int done = 0;
    check(MPI_Test(&it->request, &done, MPI_STATUS_IGNORE), "MPI_Test");
    it = done ? pending_.erase(it) : std::next(it);
  }
}

bool Outbox::drain(std::chrono::microseconds wait) {
  return wait_until(Clock::now() + wait, [&] {
    reap();
    return pending_.empty();
  });
}

}  // namespace mpibatch::detail::mpi
