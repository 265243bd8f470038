// The channel of a one-rank run: a thread of the master's process
// computes the batches.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "engine/channel.hpp"

namespace mpibatch::detail {

namespace {

// One rank: a thread of the master's process computes the batches, so that
// the master still sees signals and the time limit during a long task.
class LocalChannel : public Channel {
 public:
  explicit LocalChannel(ComputeFn compute_batch)
      : compute_(std::move(compute_batch)), thread_([this] { serve_batches(); }) {}
  ~LocalChannel() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      inbox_.clear();
    }
    wake_worker_.notify_one();
    thread_.join();  // only after stop(), or on the way to an abort
  }
  int workers() const override { return 1; }
  int rank(int) const override { return 0; }
  void send(int, Bytes batch) override {
    {
      std::lock_guard lock(mutex_);
      inbox_.push_back(std::move(batch));
    }
    wake_worker_.notify_one();
  }
  bool receive(std::chrono::microseconds wait, std::chrono::microseconds, int& w,
               Bytes& results) override {
    std::unique_lock lock(mutex_);
    if (!wake_master_.wait_for(lock, wait, [&] { return !outbox_.empty() || error_; }))
      return false;
    if (error_) std::rethrow_exception(error_);
    w = 0;
    results = std::move(outbox_.front());
    outbox_.pop_front();
    return true;
  }
  bool stop(std::chrono::steady_clock::time_point deadline,
            const std::function<void(int, Bytes&)>& on_results) override {
    std::unique_lock lock(mutex_);
    stopping_ = true;
    inbox_.clear();  // batches not started, as a worker rank drops them
    wake_worker_.notify_one();
    for (;;) {
      while (!outbox_.empty()) {
        Bytes b = std::move(outbox_.front());
        outbox_.pop_front();
        lock.unlock();
        on_results(0, b);
        lock.lock();
      }
      if (!computing_) return true;
      if (!wake_master_.wait_until(lock, deadline, [&] { return !outbox_.empty() || !computing_; }))
        return false;
    }
  }

 private:
  void serve_batches() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_worker_.wait(lock, [&] { return stopping_ || !inbox_.empty(); });
      if (stopping_) return;
      Bytes bytes = std::move(inbox_.front());
      inbox_.pop_front();
      computing_ = true;
      lock.unlock();
      Bytes results;
      std::exception_ptr error;
      try {
        results = to_bytes(compute_(from_bytes<Batch>(bytes)));
      } catch (...) {  // tasks' own exceptions are failed items: this is the run's
        error = std::current_exception();
      }
      lock.lock();
      computing_ = false;
      if (error) {
        error_ = error;
      } else {
        outbox_.push_back(std::move(results));
      }
      wake_master_.notify_one();
      if (error) return;
    }
  }

  ComputeFn compute_;
  std::mutex mutex_;
  std::condition_variable wake_worker_, wake_master_;
  std::deque<Bytes> inbox_, outbox_;
  bool stopping_ = false, computing_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts once the members it uses exist
};

}  // namespace

std::unique_ptr<Channel> make_local_channel(ComputeFn compute_batch) {
  return std::make_unique<LocalChannel>(std::move(compute_batch));
}

}  // namespace mpibatch::detail
