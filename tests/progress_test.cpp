// Progress's formatting, rate and log cadence, as pure functions: no clocks,
// no terminals (tests/progress_cli_test.py runs the real thing).
#include "engine/progress.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <regex>
#include <string>
#include <vector>

namespace mpibatch::detail {
namespace {

ProgressCounts counts(std::uint64_t total, std::uint64_t cached, std::uint64_t computed,
                      std::uint64_t failed = 0, bool known = true) {
  return {.total = total,
          .total_known = known,
          .cached = cached,
          .computed = computed,
          .failed = failed,
          .in_flight = 8};
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(Progress, BarIsExactlyAsWideAsAskedAndNeverWraps) {
  const std::vector<ProgressCounts> cases = {
      counts(1000, 0, 0), counts(1000, 300, 150, 2), counts(1000, 1000, 0),
      counts(123456789, 1234567, 98765432, 4321), counts(5000, 0, 4096, 0, false)};
  for (const int width : {1, 5, 12, 25, 40, 80, 200}) {
    for (const auto& c : cases) {
      for (const char* state : {"running", "finished", "stopped"}) {
        for (const double rate : {std::nan(""), 0.01, 88.2, 2.46e6}) {
          const std::string bar = format_bar("a_rather_long_job_name", c, width, rate, 3725, state);
          EXPECT_EQ(bar.size(), static_cast<std::size_t>(width)) << "'" << bar << "'";
          EXPECT_EQ(bar.find_first_of("\r\n"), std::string::npos) << bar;
        }
      }
    }
  }
}

TEST(Progress, BarDropsTheLeastImportantFieldsWhenNarrow) {
  const auto c = counts(1000, 300, 150, 2);
  const std::string wide = format_bar("sqrt", c, 200, 88.2, 65);
  EXPECT_TRUE(wide.starts_with("sqrt [####")) << wide;  // 45 % of the bar
  for (const char* part : {" 45.2% 452/1000", "2 failed", "ETA 0:00:06", "88.2 tasks/s",
                           "300 cached", "0:01:05 elapsed"})
    EXPECT_TRUE(contains(wide, part)) << part << " in " << wide;
  const std::string mid = format_bar("sqrt", c, 80, 88.2, 65);
  EXPECT_TRUE(contains(mid, "sqrt [#")) << mid;
  EXPECT_TRUE(contains(mid, "452/1000")) << mid;
  EXPECT_TRUE(contains(mid, "ETA 0:00:06")) << mid;
  EXPECT_TRUE(contains(mid, "88.2 tasks/s")) << mid;
  EXPECT_FALSE(contains(mid, "elapsed")) << "elapsed goes first: " << mid;
  // Without failures an 80-column terminal shows the cached count too.
  const std::string ok = format_bar("sqrt", counts(1000, 300, 152), 80, 88.2, 65);
  EXPECT_TRUE(contains(ok, "ETA 0:00:06 | 88.2 tasks/s | 300 cached")) << ok;
  const std::string narrow = format_bar("sqrt", c, 40, 88.2, 65);
  EXPECT_TRUE(contains(narrow, "452/1000")) << narrow;
  EXPECT_TRUE(contains(narrow, "2 failed")) << "failures are kept longest: " << narrow;
  // The bar's length follows the width: the wider, the more '#'.
  auto hashes = [](const std::string& s) { return std::count(s.begin(), s.end(), '#'); };
  EXPECT_LT(hashes(mid), hashes(wide));
  // An unknown total: no bar, no percent, "done/read+".
  const std::string unknown = format_bar("sqrt", counts(5000, 0, 4096, 0, false), 80, 88.2, 65);
  EXPECT_TRUE(contains(unknown, "4096/5000+")) << unknown;
  EXPECT_FALSE(contains(unknown, "[")) << unknown;
  EXPECT_TRUE(contains(unknown, "ETA ?")) << unknown;
}

TEST(Progress, RatesSlowerThanOneASecondAreShownAsSecondsPerTask) {
  EXPECT_EQ(format_rate(0.25), "4.0 s/task");
  EXPECT_EQ(format_rate(1.0 / 500), "500 s/task");
  EXPECT_EQ(format_rate(1), "1.0 tasks/s");
  EXPECT_EQ(format_rate(12.34), "12.3 tasks/s");
  EXPECT_EQ(format_rate(2.46e6), "2460000 tasks/s");
  EXPECT_EQ(format_rate(0), "? tasks/s");
  EXPECT_EQ(format_rate(NAN), "? tasks/s");
}

TEST(Progress, RateHasNoSpikeAtTheStartAndIsSmoothed) {
  RateMeter m;
  m.sample(0, 0);
  m.sample(0.001, 8);  // 8,000 tasks/s over a millisecond: not a rate yet
  EXPECT_TRUE(std::isnan(m.rate()));
  m.sample(0.5, 50);
  EXPECT_TRUE(std::isnan(m.rate())) << "less than a second of samples";
  m.sample(1.0, 100);
  EXPECT_DOUBLE_EQ(m.rate(), 100);
  for (int s = 2; s <= 10; ++s) m.sample(s, 100 * static_cast<std::uint64_t>(s));
  EXPECT_NEAR(m.rate(), 100, 1e-9);
  // Twice as fast: the average moves 30 % of the way per step, no jump.
  m.sample(11, 1200);
  EXPECT_NEAR(m.rate(), 0.3 * 200 + 0.7 * 100, 1e-9);
  m.sample(12, 1400);
  EXPECT_NEAR(m.rate(), 0.3 * 200 + 0.7 * 130, 1e-9);
}

TEST(Progress, SlowTasksAreMeasuredOverTheirOwnGaps) {
  RateMeter m;
  m.sample(0, 0);
  for (double t = 0.25; t < 4; t += 0.25) m.sample(t, 0);
  EXPECT_TRUE(std::isnan(m.rate())) << "no task has ended: unknown, not 0 tasks/s";
  m.sample(4, 1);
  EXPECT_DOUBLE_EQ(m.rate(), 0.25);
  EXPECT_EQ(format_rate(m.rate()), "4.0 s/task");
  for (double t = 4.25; t < 8; t += 0.25) m.sample(t, 1);
  EXPECT_DOUBLE_EQ(m.rate(), 0.25) << "held while no task ends";
}

TEST(Progress, AllCachedRunSaysSoWithoutARate) {
  const auto c = counts(1000, 1000, 0);
  const std::string summary = format_summary_line("sqrt", c, 0.4, "finished");
  EXPECT_EQ(summary,
            "mpibatch sqrt: finished 1000/1000 done (100.0%): 0 computed, 1000 cached, 0 failed; "
            "all 1000 from the store; wall 0:00:00");
  const std::string bar = format_bar("sqrt", c, 80, NAN, 0.4, "finished");
  EXPECT_TRUE(contains(bar, "all 1000 from the store")) << bar;
  EXPECT_FALSE(contains(bar, "tasks/s")) << bar;
  EXPECT_FALSE(contains(bar, "ETA")) << bar;
  // A run that computed: its mean rate.
  EXPECT_EQ(format_summary_line("sqrt", counts(2000, 500, 1500), 3, "finished"),
            "mpibatch sqrt: finished 2000/2000 done (100.0%): 1500 computed, 500 cached, 0 failed; "
            "wall 0:00:03; mean 500 tasks/s");
  EXPECT_TRUE(contains(format_bar("sqrt", counts(2000, 500, 1500), 120, NAN, 3, "finished"),
                       "500 tasks/s mean"));
}

TEST(Progress, EtaIsUnknownOnlyWhileItIs) {
  const auto c = counts(1000, 0, 500);
  EXPECT_TRUE(contains(format_log_line("sqrt", c, NAN, 5), "; ? tasks/s; elapsed 0:00:05; ETA ?"));
  EXPECT_EQ(format_log_line("sqrt", c, 50, 10),
            "mpibatch sqrt: running 500/1000 done (50.0%): 500 computed, 0 cached, 0 failed, 8 in "
            "flight; 50.0 tasks/s; elapsed 0:00:10; ETA 0:00:10");
  EXPECT_TRUE(contains(format_log_line("sqrt", counts(1000, 0, 1000), NAN, 5), "ETA 0:00:00"));
  EXPECT_TRUE(contains(format_log_line("sqrt", counts(1000, 0, 10, 0, false), 50, 5), "ETA ?"));
  // Never 100.0 % before the last task.
  EXPECT_TRUE(contains(format_log_line("sqrt", counts(10000, 0, 9999), 50, 5), "(99.9%)"));
}

// Simulates a run in ticks of 0.1 s (integers: no rounding drift) at a
// steady rate, and returns the times at which log lines come.
std::vector<double> log_times(std::uint64_t total, int seconds, std::uint64_t tasks_per_second) {
  std::vector<double> lines;
  int last = 0;  // ticks
  int step = 0;
  for (int tick = 1; tick <= 10 * seconds; ++tick) {
    const ProgressCounts c =
        counts(total, 0, std::min<std::uint64_t>(total, tick * tasks_per_second / 10));
    const double interval = lines.empty() ? kLogFirstInterval : kLogInterval;
    if (log_line_due((tick - last) / 10.0, interval, log_step(c), step)) {
      lines.push_back(tick / 10.0);
      last = tick;
      step = log_step(c);
    }
  }
  return lines;
}

TEST(Progress, LogLinesComeEvery30SecondsOr5PercentWhicheverFirst) {
  EXPECT_FALSE(log_line_due(29.9, 30, 3, 3));
  EXPECT_TRUE(log_line_due(30, 30, 3, 3));
  EXPECT_TRUE(log_line_due(0.5, 30, 4, 3));
  EXPECT_EQ(log_step(counts(1000, 0, 49)), 0);
  EXPECT_EQ(log_step(counts(1000, 20, 30)), 1);
  EXPECT_EQ(log_step(counts(1000, 0, 1000)), 20);
  EXPECT_EQ(log_step(counts(1000, 0, 10, 0, false)), -1);

  // Slow (1,000 tasks at 1 a second: 5 % is 50 s): the first after 10 s, then each 30 s.
  const auto slow = log_times(1000, 300, 1);
  ASSERT_GE(slow.size(), 3u);
  EXPECT_DOUBLE_EQ(slow[0], 10);
  EXPECT_DOUBLE_EQ(slow[1], 40);
  EXPECT_DOUBLE_EQ(slow[2], 50) << "5 % done";
  for (std::size_t i = 1; i < slow.size(); ++i) EXPECT_LE(slow[i] - slow[i - 1], 30);
  // Fast (1,000 tasks in 10 s): one line at each 5 %, 20 in all.
  const auto fast = log_times(1000, 10, 100);
  ASSERT_EQ(fast.size(), 20u);
  for (std::size_t i = 0; i < fast.size(); ++i) EXPECT_DOUBLE_EQ(fast[i], 0.5 * (i + 1)) << i;
}

TEST(Progress, TimestampsAreIso8601LocalTimeWithTheOffset) {
  std::tm t{};
  t.tm_year = 2025 - 1900;
  t.tm_mon = 2;
  t.tm_mday = 9;
  t.tm_hour = 14;
  t.tm_min = 5;
  t.tm_sec = 7;
  EXPECT_EQ(format_timestamp(t, 3600), "2025-03-09T14:05:07+01:00");
  EXPECT_EQ(format_timestamp(t, 0), "2025-03-09T14:05:07+00:00");
  EXPECT_EQ(format_timestamp(t, -(4 * 3600 + 30 * 60)), "2025-03-09T14:05:07-04:30");
  EXPECT_TRUE(std::regex_match(timestamp_now(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d)")))
      << timestamp_now();
}

TEST(Progress, DurationsAreClockTimesWithSlurmsDays) {
  EXPECT_EQ(format_duration(0), "0:00:00");
  EXPECT_EQ(format_duration(125), "0:02:05");
  EXPECT_EQ(format_duration(36000), "10:00:00");
  EXPECT_EQ(format_duration(90061), "1-01:01:01");
  EXPECT_EQ(format_duration(NAN), "?");
}

TEST(Progress, StartLineSaysWhatTheRunIsAbout) {
  ProgressStart s{
      .tasks = 2000, .ranks = 3, .hosts = {"n1", "n1", "n2"}, .store = "S.h5", .stored = 500};
  EXPECT_EQ(format_start_line("sqrt", s),
            "mpibatch sqrt: starting 2000 tasks on 3 ranks on 2 hosts (n1, n2); store S.h5, 500 "
            "results already in it");
  s.tasks.reset();
  s.ranks = 64;
  s.hosts.clear();
  for (int i = 0; i < 64; ++i) s.hosts.push_back("node" + std::to_string(i / 8));
  EXPECT_EQ(format_start_line("sqrt", s),
            "mpibatch sqrt: starting tasks (counting as they are read) on 64 ranks on 8 hosts "
            "(node0, node1, node2, node3, ...); store S.h5, 500 results already in it");
}

}  // namespace
}  // namespace mpibatch::detail
