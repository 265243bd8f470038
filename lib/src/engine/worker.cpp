// Workers: the MPI loop of ranks 1..N-1, the in-process channel of a
// one-rank run, and the batch computation both share.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "core/value_column.hpp"
#include "engine/channel.hpp"
#include "mpi/messaging.hpp"

namespace mpibatch::detail {

namespace {

// A job's values must match its fields; a mismatch fails the task (with
// this message) rather than the run.
void check_values(const std::string& job, const char* what, const std::vector<Field>& fields,
                  const std::vector<Value>& values) {
  if (values.size() != fields.size()) {
    throw Error("job " + job + " gave " + std::to_string(values.size()) + " " + what +
                " values for its " + std::to_string(fields.size()) + " " + what + " fields");
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i].index() != static_cast<std::size_t>(fields[i].type)) {
      throw Error("job " + job + ": " + what + " field '" + fields[i].name +
                  "' got a value of another type");
    }
  }
}

std::vector<ValueColumn> empty_columns(const std::vector<Field>& fields, std::size_t rows) {
  std::vector<ValueColumn> columns;
  for (const Field& f : fields) {
    columns.push_back(empty_column(f.type));
    std::visit([rows](auto& c) { c.reserve(rows); }, columns.back());
  }
  return columns;
}

// Appends one row: values (checked against the columns' types), or each
// column's zero when values is null (a failed task).
void push_row(std::vector<ValueColumn>& columns, const std::vector<Value>* values) {
  for (std::size_t f = 0; f < columns.size(); ++f) {
    std::visit(
        [&](auto& column) {
          using T = typename std::decay_t<decltype(column)>::value_type;
          if (values == nullptr) {
            column.push_back(T{});
          } else if constexpr (std::is_same_v<T, std::uint8_t>) {
            column.push_back(std::get<bool>((*values)[f]) ? 1 : 0);
          } else {
            column.push_back(std::get<T>((*values)[f]));
          }
        },
        columns[f]);
  }
}

}  // namespace

ResultBatch compute(const ErasedJob& job, const Batch& batch) {
  using Clock = std::chrono::steady_clock;
  const std::size_t n = batch.sizes.size();
  ResultBatch out;
  RecordBatch& r = out.records;
  r.status.reserve(n);
  r.start_time.reserve(n);
  r.duration.reserve(n);
  r.result_sizes.reserve(n);
  r.error_sizes.reserve(n);
  r.values = empty_columns(job.info.results, n);
  r.params = empty_columns(job.info.params, n);
  std::vector<Value> values, params;
  Bytes result;
  // One wall-clock reading per batch; task start times follow the steady clock.
  const double wall0 =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const auto t0 = Clock::now();
  auto ts = t0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string_view input(batch.inputs.data() + at, batch.sizes[i]);
    at += batch.sizes[i];
    values.clear();
    params.clear();
    std::string error;
    try {
      result = job.call(input, values, params);
      check_values(job.info.name, "result", job.info.results, values);
      if (result.size() > 0xFFFFFFFFu) throw Error("a result larger than 4 GiB cannot be stored");
    } catch (const std::exception& e) {
      error = e.what();
    } catch (...) {
      error = "unknown exception (not derived from std::exception)";
    }
    const auto te = Clock::now();
    r.start_time.push_back(wall0 + std::chrono::duration<double>(ts - t0).count());
    r.duration.push_back(std::chrono::duration<double>(te - ts).count());
    ts = te;
    // Params are known even when the task failed: they are read first.
    bool params_ok = true;
    try {
      check_values(job.info.name, "param", job.info.params, params);
    } catch (const std::exception& e) {
      params_ok = false;
      if (error.empty()) error = e.what();
    }
    push_row(r.params, params_ok ? &params : nullptr);
    const bool ok = error.empty();
    r.status.push_back(ok ? Status::ok : Status::failed);
    r.result_sizes.push_back(ok ? static_cast<std::uint32_t>(result.size()) : 0);
    if (ok) r.results += result;
    r.error_sizes.push_back(static_cast<std::uint32_t>(error.size()));
    r.errors += error;
    push_row(r.values, ok ? &values : nullptr);
  }
  out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return out;
}

void serve(const Environment& env, const ErasedJob& job) {
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
    outbox.send(0, kTagResults, to_bytes(compute(job, batch)));
    outbox.reap();
  }
  // The master drains results until it has every worker's goodbye.
  outbox.drain(std::chrono::hours(1));
  outbox.send(0, kTagBye, std::string());
  outbox.drain(std::chrono::hours(1));
}

namespace {

// One rank: a thread of the master's process computes the batches, so that
// the master still sees signals and the time limit during a long task.
class LocalChannel : public Channel {
 public:
  explicit LocalChannel(const ErasedJob& job) : job_(job), thread_([this] { serve_batches(); }) {}
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
        results = to_bytes(compute(job_, from_bytes<Batch>(bytes)));
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

  const ErasedJob& job_;
  std::mutex mutex_;
  std::condition_variable wake_worker_, wake_master_;
  std::deque<Bytes> inbox_, outbox_;
  bool stopping_ = false, computing_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts once the members it uses exist
};

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

std::unique_ptr<Channel> make_local_channel(const ErasedJob& job) {
  return std::make_unique<LocalChannel>(job);
}
std::unique_ptr<Channel> make_mpi_channel(const Environment& env) {
  return std::make_unique<MpiChannel>(env);
}

}  // namespace mpibatch::detail
