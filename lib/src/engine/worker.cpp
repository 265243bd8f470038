// Workers: the MPI loop of ranks 1..N-1, the in-process channel of a
// one-rank run, and the batch computation both share.
#include <chrono>
#include <deque>

#include "engine/channel.hpp"
#include "mpi/messaging.hpp"

namespace mpibatch::detail {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

WireValue WireValue::from(const Value& v) {
  WireValue w;
  w.type = static_cast<std::uint8_t>(v.index());
  switch (v.index()) {
    case 0:
      w.i = std::get<std::int64_t>(v);
      break;
    case 1:
      w.d = std::get<double>(v);
      break;
    case 2:
      w.i = std::get<bool>(v) ? 1 : 0;
      break;
    default:
      w.s = std::get<std::string>(v);
      break;
  }
  return w;
}

Value WireValue::to() const {
  switch (type) {
    case 0:
      return Value(std::in_place_type<std::int64_t>, i);
    case 1:
      return Value(std::in_place_type<double>, d);
    case 2:
      return Value(std::in_place_type<bool>, i != 0);
    default:
      return Value(std::in_place_type<std::string>, s);
  }
}

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

void fail(ResultItem& r, std::string message) {
  r.ok = false;
  r.error = std::move(message);
  r.result.clear();
  r.values.clear();
}

}  // namespace

ResultBatch compute(const ErasedJob& job, const Batch& batch) {
  using Clock = std::chrono::steady_clock;
  ResultBatch out;
  out.items.resize(batch.items.size());
  std::vector<Value> values, params;
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < batch.items.size(); ++i) {
    ResultItem& r = out.items[i];
    r.index = batch.items[i].index;
    r.start_time = now_seconds();
    const auto ts = Clock::now();
    values.clear();
    params.clear();
    try {
      r.result = job.call(batch.items[i].input, values, params);
      check_values(job.info.name, "result", job.info.results, values);
      r.values.reserve(values.size());
      for (const Value& v : values) r.values.push_back(WireValue::from(v));
    } catch (const std::exception& e) {
      fail(r, e.what());
    } catch (...) {
      fail(r, "unknown exception (not derived from std::exception)");
    }
    r.duration = std::chrono::duration<double>(Clock::now() - ts).count();
    // Params are known even when the task failed: they are read first.
    try {
      check_values(job.info.name, "param", job.info.params, params);
      for (const Value& v : params) r.params.push_back(WireValue::from(v));
    } catch (const std::exception& e) {
      fail(r, e.what());
    }
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

// One rank: the master computes each batch itself when it asks for results.
class LocalChannel : public Channel {
 public:
  explicit LocalChannel(const ErasedJob& job) : job_(job) {}
  int workers() const override { return 1; }
  int rank(int) const override { return 0; }
  void send(int, Bytes batch) override { queue_.push_back(std::move(batch)); }
  bool receive(std::chrono::microseconds, int& w, Bytes& results) override {
    if (queue_.empty()) return false;
    const Batch batch = from_bytes<Batch>(queue_.front());
    queue_.pop_front();
    w = 0;
    results = to_bytes(compute(job_, batch));
    return true;
  }
  bool stop(std::chrono::microseconds, const std::function<void(int, Bytes&)>&) override {
    queue_.clear();
    return true;
  }

 private:
  const ErasedJob& job_;
  std::deque<Bytes> queue_;
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
  bool receive(std::chrono::microseconds wait, int& w, Bytes& results) override {
    mpi::Message msg;
    for (;;) {
      if (!mpi::receive_within(env_.comm(), wait, msg)) return false;
      if (msg.tag == kTagResults) break;
      // A goodbye before stop() means a worker left: MPI would have aborted.
    }
    outbox_.reap();
    w = msg.source - 1;
    results = std::move(msg.data);
    return true;
  }
  bool stop(std::chrono::microseconds wait,
            const std::function<void(int, Bytes&)>& on_results) override {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + wait;
    for (int w = 0; w < workers(); ++w) outbox_.send(w + 1, kTagStop, std::string());
    int byes = 0;
    mpi::Message msg;
    while (byes < workers()) {
      const auto now = Clock::now();
      if (now >= deadline) return false;
      if (!mpi::receive_within(
              env_.comm(), std::chrono::duration_cast<std::chrono::microseconds>(deadline - now),
              msg)) {
        return false;
      }
      if (msg.tag == kTagBye)
        ++byes;
      else if (msg.tag == kTagResults)
        on_results(msg.source - 1, msg.data);
    }
    return outbox_.drain(std::chrono::duration_cast<std::chrono::microseconds>(
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
