// joblib's Memory.cache for C++: wrap a job's function once, call it many
// times; each result is computed once and then read from a store (the same
// kind of store runs use, so h5py reads it and `run` reuses it).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>

#include "mpibatch/job.hpp"
#include "mpibatch/store.hpp"

namespace mpibatch {

// A cached function. Not thread-safe; copies share the store.
template <class In, class Out>
class Cached {
 public:
  // The stored result, or computes, stores and returns it. A task that
  // throws is stored as failed and its exception is rethrown; a stored
  // failure is computed again. Throws store errors.
  Out operator()(const In& input) {
    const Bytes bytes = to_bytes(input);
    const TaskKey key = task_key(job_.name, job_.version, bytes);
    if (auto r = store_->get(key); r && r->status == Status::ok) return from_bytes<Out>(r->result);
    Record rec;
    rec.key = key;
    rec.job = job_.name;
    rec.job_version = job_.version;
    if (job_.param_values) rec.params = job_.param_values(input);
    rec.start_time =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    const auto t0 = std::chrono::steady_clock::now();
    try {
      Out out = job_.fn(input);
      rec.result = to_bytes(out);
      rec.values = job_.values(out);
      rec.duration = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      save(std::move(rec));
      return out;
    } catch (const std::exception& e) {
      rec.status = Status::failed;
      rec.error = e.what();
      rec.result.clear();
      rec.values.clear();
      rec.duration = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      save(std::move(rec));
      throw;
    }
  }

 private:
  friend class Memory;
  Cached(std::shared_ptr<Store> store, Job<In, Out> job, double commit_seconds)
      : store_(std::move(store)), job_(std::move(job)), commit_seconds_(commit_seconds) {
    // Records here follow the job's own field order: a stored definition in
    // another order, or wider (Store::define_job), is refused.
    const JobInfo info = job_.info();
    const JobInfo& stored = store_->define_job(info);
    if (stored.params != info.params || stored.results != info.results) {
      throw UsageError("job " + info.name + " v" + std::to_string(info.version) + " is in store " +
                       store_->path().string() +
                       " with other fields or another order; give it a new version");
    }
  }
  void save(Record rec) {
    std::vector<Record> one;
    one.push_back(std::move(rec));
    store_->append(std::move(one));
    const auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last_commit_).count() >= commit_seconds_) {
      store_->commit();
      last_commit_ = now;
    }
  }
  std::shared_ptr<Store> store_;
  Job<In, Out> job_;
  double commit_seconds_;
  std::chrono::steady_clock::time_point last_commit_{};
};

class Memory {
 public:
  // Opens (or creates) the store as its writer. commit_seconds: results are
  // committed at most this long after they are computed (0: every call) and
  // when the last Cached and the Memory are gone. Throws store errors.
  explicit Memory(const std::filesystem::path& store, double commit_seconds = 1.0)
      : store_(std::make_shared<Store>(Store::open(store))), commit_seconds_(commit_seconds) {}

  template <class In, class Out>
  Cached<In, Out> cache(Job<In, Out> job) {
    return Cached<In, Out>(store_, std::move(job), commit_seconds_);
  }

  Store& store() { return *store_; }

 private:
  std::shared_ptr<Store> store_;
  double commit_seconds_;
};

}  // namespace mpibatch
