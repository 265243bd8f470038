#include "engine/progress.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string_view>

#include "mpibatch/error.hpp"

namespace mpibatch::detail {

namespace {

using ull = unsigned long long;

std::string printf_text(const char* format, auto... args) {
  char buf[256];
  std::snprintf(buf, sizeof buf, format, args...);
  return buf;
}

// Our standard error is a terminal ("" in *tty), or (under mpirun, which
// pipes the ranks' output) the launcher's is: its device in *tty, for the
// width. Under srun the parent is slurmstepd: log lines.
bool on_terminal(std::string* tty) {
  if (::isatty(STDERR_FILENO)) return true;
  if (std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr) return false;
  char target[256] = {};
  const std::string link = "/proc/" + std::to_string(::getppid()) + "/fd/2";
  const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
  if (n <= 0) return false;
  const std::string_view t(target, static_cast<std::size_t>(n));
  if (!t.starts_with("/dev/pts/") && !t.starts_with("/dev/tty")) return false;
  *tty = t;
  return true;
}

double percent(const ProgressCounts& c) {
  if (!c.total_known) return NAN;
  if (c.total == 0) return 100;
  // Rounded down: 100.0 % only when every task is done.
  const double p = 100.0 * static_cast<double>(c.done()) / static_cast<double>(c.total);
  return std::floor(p * 10) / 10;
}

std::string count_text(const ProgressCounts& c) {
  return std::to_string(c.done()) + "/" + std::to_string(c.total) + (c.total_known ? "" : "+");
}

// Seconds left at `rate`: NaN while unknown.
double eta_seconds(const ProgressCounts& c, double rate) {
  if (!c.total_known) return NAN;
  const std::uint64_t left = c.total - std::min(c.total, c.done());
  if (left == 0) return 0;
  return rate > 0 ? static_cast<double>(left) / rate : NAN;
}

// This run's mean over its wall time; NaN when it computed nothing.
double mean_rate(const ProgressCounts& c, double elapsed) {
  if (c.computed == 0 || elapsed <= 0) return NAN;
  return static_cast<double>(c.computed + c.failed) / elapsed;
}

bool all_cached(const ProgressCounts& c) {
  return c.cached > 0 && c.computed == 0 && c.failed == 0 && c.total_known && c.done() == c.total;
}

}  // namespace

void RateMeter::sample(double seconds, std::uint64_t finished) {
  if (!started_) {
    started_ = true;
    t0_ = seconds;
    n0_ = finished;
    return;
  }
  const double dt = seconds - t0_;
  if (dt < kMinStep || finished <= n0_) return;  // too short, or nothing ended yet
  const double r = static_cast<double>(finished - n0_) / dt;
  rate_ = std::isnan(rate_) ? r : kSmoothing * r + (1 - kSmoothing) * rate_;
  t0_ = seconds;
  n0_ = finished;
}

std::string format_rate(double r) {
  if (!(r > 0) || !std::isfinite(r)) return "? tasks/s";
  if (r < 1) {
    const double s = 1 / r;
    return printf_text(s < 99.95 ? "%.1f s/task" : "%.0f s/task", s);
  }
  return printf_text(r < 99.95 ? "%.1f tasks/s" : "%.0f tasks/s", r);
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<long long>(seconds + 0.5);
  const long long days = s / 86400;
  if (days > 0)
    return printf_text("%lld-%02lld:%02lld:%02lld", days, (s / 3600) % 24, (s / 60) % 60, s % 60);
  return printf_text("%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
}

std::string format_timestamp(const std::tm& t, long utc_offset) {
  const long off = utc_offset < 0 ? -utc_offset : utc_offset;
  return printf_text("%04d-%02d-%02dT%02d:%02d:%02d%c%02ld:%02ld", t.tm_year + 1900, t.tm_mon + 1,
                     t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, utc_offset < 0 ? '-' : '+',
                     off / 3600, off / 60 % 60);
}

std::string timestamp_now() {
  const std::time_t now = std::time(nullptr);
  std::tm t{};
  ::localtime_r(&now, &t);
  return format_timestamp(t, t.tm_gmtoff);
}

std::string format_bar(const std::string& job, const ProgressCounts& c, int width, double rate,
                       double elapsed, const char* state) {
  if (width <= 0) return {};
  const auto w = static_cast<std::size_t>(width);
  const bool running = std::strcmp(state, "running") == 0;
  const double pct = percent(c);
  std::string core = count_text(c);
  if (std::isfinite(pct)) core = printf_text("%5.1f%% ", pct) + core;
  // Optional fields, most important first, dropped from the back when
  // narrow; the first `over_bar` of them are kept rather than the bar.
  std::vector<std::string> fields;
  if (c.failed > 0) fields.push_back(std::to_string(c.failed) + " failed");
  if (running) {
    fields.push_back("ETA " + format_duration(eta_seconds(c, rate)));
  } else if (all_cached(c)) {
    fields.push_back("all " + std::to_string(c.cached) + " from the store");
  }
  const std::size_t over_bar = fields.size();
  if (running) {
    fields.push_back(format_rate(rate));
  } else if (const double mean = mean_rate(c, elapsed); std::isfinite(mean)) {
    fields.push_back(format_rate(mean) + " mean");
  }
  if (c.cached > 0 && !all_cached(c)) fields.push_back(std::to_string(c.cached) + " cached");
  fields.push_back(format_duration(elapsed) + " elapsed");

  auto rest = [&](std::size_t n) {
    std::string r = core;
    for (std::size_t i = 0; i < n; ++i) r += " | " + fields[i];
    return r;
  };
  constexpr std::size_t kMinBar = 10;
  // "job [bar] rest", or "job rest"
  auto fits = [&](std::size_t n, bool bar) {
    return job.size() + (bar ? 4 + kMinBar : 1) + rest(n).size() <= w;
  };
  std::size_t n = fields.size();
  const bool with_bar = std::isfinite(pct);
  while (with_bar && n > over_bar && !fits(n, true)) --n;
  const bool bar = with_bar && fits(n, true);
  if (!bar) {
    n = fields.size();
    while (n > 0 && !fits(n, false)) --n;
  }
  const std::string r = rest(n);
  std::string line;
  if (bar) {
    const std::size_t inner = w - job.size() - 4 - r.size();
    const auto fill =
        std::min(inner, static_cast<std::size_t>(pct / 100 * static_cast<double>(inner)));
    line = job + " [" + std::string(fill, '#') + std::string(inner - fill, '.') + "] " + r;
  } else {
    line = job + " " + r;
    if (line.size() > w) line = r;
  }
  line.resize(w, ' ');  // never wraps; cut at worst
  return line;
}

std::string format_start_line(const std::string& job, const ProgressStart& s) {
  std::string line = "mpibatch " + job + ": starting ";
  line += s.tasks ? std::to_string(*s.tasks) + (*s.tasks == 1 ? " task" : " tasks")
                  : std::string("tasks (counting as they are read)");
  std::vector<std::string> hosts;  // distinct, in rank order
  for (const auto& h : s.hosts)
    if (std::find(hosts.begin(), hosts.end(), h) == hosts.end()) hosts.push_back(h);
  line += " on " + std::to_string(s.ranks) + (s.ranks == 1 ? " rank" : " ranks");
  if (!hosts.empty()) {
    line += " on " + std::to_string(hosts.size()) + (hosts.size() == 1 ? " host (" : " hosts (");
    constexpr std::size_t kNamed = 4;  // a 500-node job's list would fill the line
    for (std::size_t i = 0; i < std::min(hosts.size(), kNamed); ++i)
      line += (i ? ", " : "") + hosts[i];
    if (hosts.size() > kNamed) line += ", ...";
    line += ")";
  }
  line += "; store " + s.store;
  if (s.stored) line += ", " + std::to_string(*s.stored) + " results already in it";
  return line;
}

std::string format_log_line(const std::string& job, const ProgressCounts& c, double rate,
                            double elapsed) {
  const double pct = percent(c);
  return "mpibatch " + job + ": running " + count_text(c) + " done" +
         (std::isfinite(pct) ? printf_text(" (%.1f%%)", pct) : std::string()) + ": " +
         printf_text("%llu computed, %llu cached, %llu failed, %llu in flight; ",
                     static_cast<ull>(c.computed), static_cast<ull>(c.cached),
                     static_cast<ull>(c.failed), static_cast<ull>(c.in_flight)) +
         format_rate(rate) + "; elapsed " + format_duration(elapsed) + "; ETA " +
         format_duration(eta_seconds(c, rate));
}

std::string format_summary_line(const std::string& job, const ProgressCounts& c, double elapsed,
                                const char* state) {
  const double pct = percent(c);
  std::string line =
      "mpibatch " + job + ": " + state + " " + count_text(c) + " done" +
      (std::isfinite(pct) ? printf_text(" (%.1f%%)", pct) : std::string()) + ": " +
      printf_text("%llu computed, %llu cached, %llu failed", static_cast<ull>(c.computed),
                  static_cast<ull>(c.cached), static_cast<ull>(c.failed));
  if (all_cached(c)) line += "; all " + std::to_string(c.cached) + " from the store";
  line += "; wall " + format_duration(elapsed);
  if (const double mean = mean_rate(c, elapsed); std::isfinite(mean))
    line += "; mean " + format_rate(mean);
  return line;
}

int log_step(const ProgressCounts& c) {
  if (!c.total_known || c.total == 0) return -1;
  return static_cast<int>(20 * std::min(c.done(), c.total) / c.total);
}

bool log_line_due(double since_last_line, double interval, int step_now, int step_at_last_line) {
  return since_last_line >= interval || step_now > step_at_last_line;
}

Progress::Progress(ProgressMode mode, const std::filesystem::path& json_file, std::string job,
                   const ProgressStart& start)
    : mode_(mode), job_(std::move(job)) {
  std::string tty;
  if (mode_ == ProgressMode::automatic)
    mode_ = on_terminal(&tty) ? ProgressMode::bar : ProgressMode::log;
  if (mode_ == ProgressMode::bar && tty.empty()) on_terminal(&tty);  // --progress bar
  if (!tty.empty()) tty_fd_ = ::open(tty.c_str(), O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (!json_file.empty()) {
    json_ = std::fopen(json_file.c_str(), "a");
    if (json_ == nullptr) {
      throw IoError("progress file " + json_file.string() + ": " + std::strerror(errno));
    }
  }
  if (mode_ == ProgressMode::log) {
    std::fprintf(stderr, "%s %s\n", timestamp_now().c_str(),
                 format_start_line(job_, start).c_str());
    std::fflush(stderr);
  }
  last_step_ = log_step({.total = start.tasks.value_or(0), .total_known = start.tasks.has_value()});
}

Progress::~Progress() {
  if (json_ != nullptr) std::fclose(json_);
  if (tty_fd_ >= 0) ::close(tty_fd_);
}

double Progress::seconds(Clock::time_point t) const {
  return std::chrono::duration<double>(t - start_).count();
}

// Read at each redraw (5 a second): a resized terminal gets the new width.
// One column less than the terminal's, so no terminal wraps the line.
int Progress::columns() const {
  winsize ws{};
  if (::ioctl(tty_fd_ >= 0 ? tty_fd_ : STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return ws.ws_col - 1;
  if (const char* c = std::getenv("COLUMNS"); c != nullptr && std::atoi(c) > 0)
    return std::atoi(c) - 1;
  return 79;
}

void Progress::update(const ProgressCounts& c) {
  const auto now = Clock::now();
  if (now >= next_sample_) {
    meter_.sample(seconds(now), c.computed + c.failed);
    next_sample_ = now + std::chrono::milliseconds(250);
  }
  const double since = std::chrono::duration<double>(now - last_).count();
  bool due = false;  // the mode's output
  switch (mode_) {
    case ProgressMode::bar:
      due = since >= 0.2;
      break;
    case ProgressMode::log:
      // Not at 100 %: the summary comes next.
      due = log_line_due(since, log_lines_ == 0 ? kLogFirstInterval : kLogInterval, log_step(c),
                         last_step_) &&
            !(c.total_known && c.done() >= c.total);
      break;
    case ProgressMode::json:
      due = since >= 1;
      break;
    default:
      break;
  }
  // The JSON file: each second, and with each of the mode's reports.
  const bool json_due =
      json_ != nullptr && (due || std::chrono::duration<double>(now - last_json_).count() >= 1);
  if (due || json_due) report(c, "running", now, due);
}

void Progress::finish(const ProgressCounts& c, const char* state) {
  const auto now = Clock::now();
  meter_.sample(seconds(now), c.computed + c.failed);
  report(c, state, now, true);
  if (mode_ == ProgressMode::bar) std::fputc('\n', stderr);
  std::fflush(stderr);
}

void Progress::warn(const std::string& text) {
  if (json_ != nullptr || mode_ == ProgressMode::json) {
    std::FILE* out = json_ != nullptr ? json_ : stderr;
    const nlohmann::json j{{"job", job_}, {"warning", text}};
    std::fprintf(out, "%s\n",
                 j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    std::fflush(out);
    if (json_ == nullptr) return;
  }
  if (mode_ == ProgressMode::bar) std::fputs("\r\x1b[K", stderr);  // the bar comes back below
  if (mode_ == ProgressMode::log) std::fprintf(stderr, "%s ", timestamp_now().c_str());
  std::fprintf(stderr, "mpibatch: warning: %s\n", text.c_str());
  std::fflush(stderr);
}

void Progress::report(const ProgressCounts& c, const char* state, Clock::time_point now,
                      bool draw) {
  const int step = log_step(c);
  const bool running = std::strcmp(state, "running") == 0;
  const double elapsed = seconds(now);
  const double r = meter_.rate();
  if (json_ != nullptr || mode_ == ProgressMode::json) {
    std::FILE* out = json_ != nullptr ? json_ : stderr;
    const double eta = running ? eta_seconds(c, r) : NAN;
    // The names of `mpibatch status --json`; rate is the smoothed one (0 while unknown).
    std::fprintf(
        out,
        "{\"job\":\"%s\",\"state\":\"%s\",\"elapsed\":%.3f,\"total\":%llu,\"total_known\":%s,"
        "\"done\":%llu,\"cached\":%llu,\"computed\":%llu,\"failed\":%llu,\"in_flight\":%llu,"
        "\"pending\":%llu,\"rate\":%.3f,\"mean_rate\":%.3f,\"eta\":%s}\n",
        job_.c_str(), state, elapsed, static_cast<ull>(c.total), c.total_known ? "true" : "false",
        static_cast<ull>(c.done()), static_cast<ull>(c.cached), static_cast<ull>(c.computed),
        static_cast<ull>(c.failed), static_cast<ull>(c.in_flight),
        static_cast<ull>(c.total - std::min(c.total, c.done())), std::isfinite(r) ? r : 0.0,
        std::isfinite(mean_rate(c, elapsed)) ? mean_rate(c, elapsed) : 0.0,
        std::isfinite(eta) ? printf_text("%.3f", eta).c_str() : "null");
    std::fflush(out);
    last_json_ = now;
  }
  if (!draw) return;
  last_ = now;
  if (mode_ == ProgressMode::bar) {
    const std::string line = format_bar(job_, c, columns(), r, elapsed, state);
    std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
    std::fflush(stderr);
  } else if (mode_ == ProgressMode::log) {
    const std::string text = running ? format_log_line(job_, c, r, elapsed)
                                     : format_summary_line(job_, c, elapsed, state);
    std::fprintf(stderr, "%s %s\n", timestamp_now().c_str(), text.c_str());
    std::fflush(stderr);
    if (running) ++log_lines_;
    last_step_ = step;
  }
}

}  // namespace mpibatch::detail
