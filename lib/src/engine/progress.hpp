// Progress of a run, reported by the master: a bar redrawn in place on a
// terminal (as wide as the terminal, following resizes), timestamped lines in
// log files (Slurm output), JSON lines for machines. Resume-aware: tasks
// served from the store are counted apart, and the rate and ETA cover the
// work this run computes. The formatting is in pure functions, unit-tested
// (tests/progress_test.cpp).
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

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

// What the log's start line says, known to the master before the first task.
struct ProgressStart {
  std::optional<std::uint64_t> tasks;  // unknown until read to the end
  int ranks = 1;
  std::vector<std::string> hosts;       // one per rank, as recorded in the run
  std::string store;                    // its path
  std::optional<std::uint64_t> stored;  // results in the store before the run
};

// The rate of finished tasks, smoothed as tqdm does (an exponential moving
// average, weight 0.3 to the newest): each step covers at least 1 s and at
// least one finished task, so there is no spike from a first sample a few
// microseconds wide, and slow tasks are measured over their own gaps. The
// rate is unknown (NaN) until the first step; it is held while no task ends.
class RateMeter {
 public:
  static constexpr double kSmoothing = 0.3;
  static constexpr double kMinStep = 1.0;  // seconds
  // Tasks finished so far (a non-decreasing count) at `seconds` since any epoch.
  void sample(double seconds, std::uint64_t finished);
  double rate() const { return rate_; }  // tasks per second, or NaN

 private:
  bool started_ = false;
  double t0_ = 0;
  std::uint64_t n0_ = 0;
  double rate_ = NAN;
};

// "12.3 tasks/s", "1234 tasks/s", "4.0 s/task" (slower than one a second),
// "? tasks/s" when unknown (NaN or not positive).
std::string format_rate(double tasks_per_second);
// "0:02:05", "12:00:00", "3-01:00:00" (days, as Slurm writes them), "?".
std::string format_duration(double seconds);
// ISO 8601 local time with its offset: "2025-03-09T14:05:07+01:00".
std::string format_timestamp(const std::tm& local, long utc_offset_seconds);
std::string timestamp_now();

// One bar line, exactly `width` characters (the bar takes the slack; fields
// are dropped, least important first, when narrow: never longer). rate is
// the smoothed rate (NaN: unknown); state is "running" or the run's end
// ("finished", "stopped", "failed"), where the mean rate replaces it.
std::string format_bar(const std::string& job, const ProgressCounts& c, int width, double rate,
                       double elapsed, const char* state = "running");
// The log's lines, without their timestamp.
std::string format_start_line(const std::string& job, const ProgressStart& s);
std::string format_log_line(const std::string& job, const ProgressCounts& c, double rate,
                            double elapsed);
std::string format_summary_line(const std::string& job, const ProgressCounts& c, double elapsed,
                                const char* state);

// Log cadence: a line when `interval` seconds passed since the last one, or
// when the done count reached a new 5 % step (step: done * 20 / total, -1
// when the total is unknown), whichever comes first.
constexpr double kLogFirstInterval = 10;  // the first line after the start line
constexpr double kLogInterval = 30;
int log_step(const ProgressCounts& c);
bool log_line_due(double since_last_line, double interval, int step_now, int step_at_last_line);

class Progress {
 public:
  // Throws IoError when the JSON file cannot be opened. Writes the start
  // line in log mode.
  Progress(ProgressMode mode, const std::filesystem::path& json_file, std::string job,
           const ProgressStart& start = {});
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  // Reports if it is time to (throttled per mode). Called often: one clock
  // read, no system call otherwise.
  void update(const ProgressCounts& c);
  // The last report, with the run's end state.
  void finish(const ProgressCounts& c, const char* state);
  // A line of its own, whatever the mode: "mpibatch: warning: <text>" (after
  // a timestamp in log mode, above the bar on a terminal), and in JSON output
  // {"job":..., "warning": text}. Does not throw.
  void warn(const std::string& text);

 private:
  using Clock = std::chrono::steady_clock;
  // Writes the JSON line (when there is a JSON output) and, when draw, the mode's output.
  void report(const ProgressCounts& c, const char* state, Clock::time_point now, bool draw);
  double seconds(Clock::time_point t) const;
  int columns() const;
  ProgressMode mode_;
  std::string job_;
  std::FILE* json_ = nullptr;
  int tty_fd_ = -1;  // the launcher's terminal under mpirun, for its width
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_ = start_;  // the mode's last report
  Clock::time_point last_json_ = start_;
  Clock::time_point next_sample_ = start_;
  RateMeter meter_;
  int last_step_ = -1;
  int log_lines_ = 0;  // progress lines written (the first comes sooner)
};

}  // namespace mpibatch::detail
