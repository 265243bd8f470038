#include "engine/progress.hpp"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "mpibatch/error.hpp"

namespace mpibatch::detail {

namespace {

std::string clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
  return buf;
}

// Our standard error is a terminal, or (under mpirun, which pipes the ranks'
// output) the launcher's is. Under srun the parent is slurmstepd: log lines.
bool on_terminal() {
  if (::isatty(STDERR_FILENO)) return true;
  if (std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr) return false;
  char target[256] = {};
  const std::string link = "/proc/" + std::to_string(::getppid()) + "/fd/2";
  const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
  if (n <= 0) return false;
  const std::string_view t(target, static_cast<std::size_t>(n));
  return t.starts_with("/dev/pts/") || t.starts_with("/dev/tty");
}

}  // namespace

Progress::Progress(ProgressMode mode, const std::filesystem::path& json_file, std::string job)
    : mode_(mode), job_(std::move(job)) {
  if (mode_ == ProgressMode::automatic) {
    mode_ = on_terminal() ? ProgressMode::bar : ProgressMode::log;
  }
  if (!json_file.empty()) {
    json_ = std::fopen(json_file.c_str(), "a");
    if (json_ == nullptr) {
      throw IoError("progress file " + json_file.string() + ": " + std::strerror(errno));
    }
  }
}

Progress::~Progress() {
  if (json_ != nullptr) std::fclose(json_);
}

double Progress::rate(const ProgressCounts& c) {
  // Over the last ~10 s: recent speed, not the average since the start.
  const auto now = Clock::now();
  samples_.emplace_back(now, c.computed + c.failed);
  while (samples_.size() > 2 && now - samples_.front().first > std::chrono::seconds(10)) {
    samples_.pop_front();
  }
  const double dt = std::chrono::duration<double>(now - samples_.front().first).count();
  if (dt <= 0) return 0;
  return static_cast<double>(samples_.back().second - samples_.front().second) / dt;
}

void Progress::update(const ProgressCounts& c) {
  const auto now = Clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  const int percent =
      c.total_known && c.total > 0 ? static_cast<int>(100 * c.done() / c.total) : -1;
  bool due = false;
  switch (mode_) {
    case ProgressMode::bar:
      due = since >= 0.2;
      break;
    // Log files: every 10 s, or every 10 % when that comes first.
    case ProgressMode::log:
      due = since >= 10 || (percent >= 0 && percent / 10 != last_percent_ / 10);
      break;
    default:
      due = since >= 1;
      break;
  }
  if (json_ != nullptr && since >= 1) due = true;
  if (!due) return;
  last_ = now;
  last_percent_ = percent;
  report(c, "running");
}

void Progress::finish(const ProgressCounts& c, const char* state) {
  report(c, state);
  if (mode_ == ProgressMode::bar) std::fputc('\n', stderr);
  std::fflush(stderr);
}

void Progress::report(const ProgressCounts& c, const char* state) {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  const double r = rate(c);
  const double left = c.total_known ? static_cast<double>(c.total - c.done()) : NAN;
  const double eta = r > 0 ? left / r : NAN;
  const double pct = c.total_known && c.total > 0
                         ? 100.0 * static_cast<double>(c.done()) / static_cast<double>(c.total)
                         : NAN;
  const std::string total = c.total_known ? std::to_string(c.total) : std::to_string(c.total) + "+";

  if (json_ != nullptr || mode_ == ProgressMode::json) {
    std::FILE* out = json_ != nullptr ? json_ : stderr;
    std::fprintf(
        out,
        "{\"job\":\"%s\",\"state\":\"%s\",\"elapsed\":%.3f,\"total\":%llu,\"total_known\":%s,"
        "\"done\":%llu,\"cached\":%llu,\"computed\":%llu,\"failed\":%llu,\"in_flight\":%llu,"
        "\"rate\":%.3f,\"eta\":%s}\n",
        job_.c_str(), state, elapsed, static_cast<unsigned long long>(c.total),
        c.total_known ? "true" : "false", static_cast<unsigned long long>(c.done()),
        static_cast<unsigned long long>(c.cached), static_cast<unsigned long long>(c.computed),
        static_cast<unsigned long long>(c.failed), static_cast<unsigned long long>(c.in_flight), r,
        std::isfinite(eta) ? std::to_string(eta).c_str() : "null");
    std::fflush(out);
  }
  if (mode_ == ProgressMode::bar) {
    constexpr int kWidth = 24;
    const int fill = std::isfinite(pct) ? static_cast<int>(pct / 100 * kWidth) : 0;
    std::string bar(static_cast<std::size_t>(fill), '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr,
                 "\r%s [%s] %5.1f%% %llu/%s | %.0f tasks/s | %s elapsed | ETA %s | cached %llu | "
                 "failed %llu\x1b[K",
                 job_.c_str(), bar.c_str(), std::isfinite(pct) ? pct : 0.0,
                 static_cast<unsigned long long>(c.done()), total.c_str(), r,
                 clock_text(elapsed).c_str(), clock_text(eta).c_str(),
                 static_cast<unsigned long long>(c.cached),
                 static_cast<unsigned long long>(c.failed));
    std::fflush(stderr);
  } else if (mode_ == ProgressMode::log) {
    std::fprintf(stderr,
                 "mpibatch %s: %s %llu/%s done (%.1f%%): %llu computed, %llu cached, %llu failed; "
                 "%.0f tasks/s; elapsed %s; ETA %s\n",
                 job_.c_str(), state, static_cast<unsigned long long>(c.done()), total.c_str(),
                 std::isfinite(pct) ? pct : 0.0, static_cast<unsigned long long>(c.computed),
                 static_cast<unsigned long long>(c.cached),
                 static_cast<unsigned long long>(c.failed), r, clock_text(elapsed).c_str(),
                 clock_text(eta).c_str());
    std::fflush(stderr);
  }
}

}  // namespace mpibatch::detail
