// The channel of an MPI run: worker w is rank w + 1.
#include <algorithm>
#include <chrono>

#include "engine/channel.hpp"
#include "mpi/messaging.hpp"

namespace mpibatch::detail {

namespace {

class MpiChannel : public Channel {
 public:
  explicit MpiChannel(const Environment& env) : env_(env), outbox_(env.comm()) {}
  int workers() const override { return env_.size() - 1; }
  int rank(int w) const override { return w + 1; }
  void send(int w, Bytes batch) override {
    outbox_.send(w + 1, kTagBatch, std::move(batch));
    outbox_.reap();
  }
  bool receive(std::chrono::microseconds wait, std::chrono::microseconds max_nap, int& w,
               Bytes& results) override {
    mpi::Message msg;
    // A batch beyond the eager limit moves only while this rank calls MPI:
    // short naps until every send is done, or its worker waits in MPI_Mrecv.
    if (!outbox_.empty()) max_nap = std::min(max_nap, mpi::kMaxNap);
    for (;;) {
      if (!mpi::receive_within(env_.comm(), wait, msg, max_nap)) return false;
      if (msg.tag == kTagResults) break;
      // A goodbye before stop() means a worker left: MPI would have aborted.
    }
    outbox_.reap();
    w = msg.source - 1;
    results = std::move(msg.data);
    return true;
  }
  bool stop(std::chrono::steady_clock::time_point deadline,
            const std::function<void(int, Bytes&)>& on_results) override {
    using Clock = std::chrono::steady_clock;
    using std::chrono::microseconds;
    for (int w = 0; w < workers(); ++w) outbox_.send(w + 1, kTagStop, std::string());
    int byes = 0;
    mpi::Message msg;
    while (byes < workers()) {
      const auto now = Clock::now();
      if (now >= deadline ||
          !mpi::receive_within(env_.comm(),
                               std::chrono::duration_cast<microseconds>(deadline - now), msg)) {
        return false;
      }
      if (msg.tag == kTagBye)
        ++byes;
      else if (msg.tag == kTagResults)
        on_results(msg.source - 1, msg.data);
    }
    return outbox_.drain(std::chrono::duration_cast<microseconds>(
        std::max(Clock::duration::zero(), deadline - Clock::now())));
  }

 private:
  const Environment& env_;
  mpi::Outbox outbox_;
};

}  // namespace

std::unique_ptr<Channel> make_mpi_channel(const Environment& env) {
  return std::make_unique<MpiChannel>(env);
}

}  // namespace mpibatch::detail
