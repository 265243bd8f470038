// How many tasks go in the next batch (docs/ARCHITECTURE.md, "Batches").
//
// Automatic: start with one task, then size batches so that each holds
// about `target` seconds of work, estimated from the compute time of
// completed batches (an exponential average per task), growing at most 2x a
// step; near the end, when the number of tasks left is known, batches shrink
// so that all workers finish together. Fixed: always `fixed` tasks.
#pragma once

#include <algorithm>
#include <cstddef>

namespace mpibatch::detail {

class BatchSizer {
 public:
  BatchSizer(std::size_t fixed, double target) : fixed_(fixed), target_(target) {}

  void observe(std::size_t tasks, double seconds) {
    if (tasks == 0) return;
    const double per_task = std::max(seconds, 1e-9) / static_cast<double>(tasks);
    per_task_ = per_task_ < 0 ? per_task : 0.7 * per_task_ + 0.3 * per_task;
  }

  // left: tasks not yet dispatched, when the stream is known to end; else 0.
  std::size_t next(std::size_t left, std::size_t workers) {
    if (fixed_ > 0) return fixed_;
    std::size_t want = 1;
    if (per_task_ > 0) {
      const double ideal = target_ / per_task_;
      want = static_cast<std::size_t>(std::clamp(ideal, 1.0, static_cast<double>(kMax)));
      want = std::min(want, std::max<std::size_t>(1, last_ * 2));
    }
    if (left > 0)
      want =
          std::min(want, std::max<std::size_t>(1, left / (2 * std::max<std::size_t>(1, workers))));
    last_ = want;
    return want;
  }

  // The measured compute time per task (average), or -1 before any.
  double seconds_per_task() const { return per_task_; }

  // The size last handed out (1 before the first).
  std::size_t current() const { return fixed_ > 0 ? fixed_ : last_; }

  // Bounds message size and the master's working set: a smaller batch keeps
  // the claims and index lines its keys brought in cached until their
  // results settle them (BENCHMARKS.md, tuning constants).
  static constexpr std::size_t kMax = std::size_t{1} << 12;

 private:
  std::size_t fixed_;
  double target_;
  double per_task_ = -1;
  std::size_t last_ = 1;
};

// How many tasks the master reads, keys and looks up ahead of dispatch
// (joblib's pre_dispatch): four batches a worker, at least 8,192, and at most
// 2^20 so that memory stays bounded with thousands of workers.
inline std::size_t read_ahead(std::size_t workers, std::size_t batch) {
  return std::clamp<std::size_t>(4 * workers * batch, 8192, std::size_t{1} << 20);
}

}  // namespace mpibatch::detail
