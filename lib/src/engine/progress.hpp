// Progress of a run, reported by the master: a bar redrawn in place on a
// terminal, plain lines in log files (Slurm output), JSON lines for
// machines. Resume-aware: tasks served from the store are counted apart,
// and the rate and ETA cover the work this run computes.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <string>

#include "mpibatch/run.hpp"

namespace mpibatch::detail {

struct ProgressCounts {
  std::uint64_t total = 0;  // tasks read so far (all of them once total_known)
  bool total_known = false;
  std::uint64_t cached = 0;
  std::uint64_t computed = 0;
  std::uint64_t failed = 0;
  std::uint64_t in_flight = 0;
  std::uint64_t done() const { return cached + computed + failed; }
};

class Progress {
 public:
  // Throws IoError when the JSON file cannot be opened.
  Progress(ProgressMode mode, const std::filesystem::path& json_file, std::string job);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  // Reports if it is time to (throttled per mode).
  void update(const ProgressCounts& c);
  // The last report, with the run's end state.
  void finish(const ProgressCounts& c, const char* state);

 private:
  using Clock = std::chrono::steady_clock;
  void report(const ProgressCounts& c, const char* state);
  double rate(const ProgressCounts& c);
  ProgressMode mode_;
  std::string job_;
  std::FILE* json_ = nullptr;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_ = start_;
  std::deque<std::pair<Clock::time_point, std::uint64_t>> samples_;  // (time, computed)
  int last_percent_ = -1;
};

}  // namespace mpibatch::detail
