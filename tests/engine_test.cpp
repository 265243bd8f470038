// The engine under real MPI; ctest runs this binary at 1, 2, 3 and 4 ranks.
// Every test is collective: all ranks run it; rank 0 checks the results.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <ranges>
#include <set>
#include <thread>

#include "mpibatch/mpibatch.hpp"

namespace {

using namespace mpibatch;
namespace fs = std::filesystem;

Environment* g_env = nullptr;

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A folder every rank sees (rank 0 makes it, everyone gets its name).
class SharedDir {
 public:
  SharedDir() {
    std::string name(256, '\0');
    if (g_env->rank() == 0) {
      std::string tmpl = (fs::temp_directory_path() / "mpibatch-engine-XXXXXX").string();
      if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
      std::copy(tmpl.begin(), tmpl.end(), name.begin());
    }
    MPI_Bcast(name.data(), 256, MPI_CHAR, 0, MPI_COMM_WORLD);
    path_ = name.c_str();
  }
  ~SharedDir() {
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_env->rank() == 0) fs::remove_all(path_);
  }
  fs::path operator/(const std::string& n) const { return path_ / n; }

 private:
  fs::path path_;
};

// Random durations (0 to 300 us) and random result sizes (0 to 39 numbers).
std::vector<std::uint64_t> work(const std::uint64_t& i) {
  std::this_thread::sleep_for(std::chrono::microseconds(mix(i) % 300));
  std::vector<std::uint64_t> out(mix(i + 1) % 40);
  for (std::size_t k = 0; k < out.size(); ++k) out[k] = mix(i * 131 + k);
  return out;
}

Job<std::uint64_t, std::vector<std::uint64_t>> work_job(std::int64_t version = 1) {
  return {.name = "work", .version = version, .fn = work};
}

RunOptions quiet(const fs::path& store) {
  RunOptions o;
  o.store = store;
  o.progress = ProgressMode::none;
  return o;
}

TEST(Engine, ResultsEqualASerialLoopInTaskOrder) {
  SharedDir dir;
  const std::uint64_t n = 10000;
  const auto results =
      map(*g_env, work_job(), std::views::iota(std::uint64_t{0}, n), quiet(dir / "s.h5"));
  if (g_env->rank() != 0) return;
  ASSERT_EQ(results.size(), n);
  for (std::uint64_t i = 0; i < n; ++i) ASSERT_EQ(results[i], work(i)) << "task " << i;
  Store s = Store::open(dir / "s.h5", {.read_only = true});
  ASSERT_EQ(s.runs().size(), 1u);
  EXPECT_EQ(s.runs()[0].ranks, g_env->size());
  EXPECT_EQ(s.runs()[0].state, RunState::finished);
  EXPECT_EQ(s.runs()[0].task_count, static_cast<std::int64_t>(n));
  // With workers, rank 0 only dispatches: every record names a worker rank.
  std::set<int> ranks;
  s.for_each([&](const Record& r) { ranks.insert(r.rank); });
  if (g_env->size() > 1) {
    EXPECT_EQ(ranks.count(0), 0u);
  }
  EXPECT_EQ(static_cast<int>(ranks.size()), std::max(1, g_env->size() - 1));
}

TEST(Engine, RerunComputesNothingNewTasksOnlyNewVersionAll) {
  SharedDir dir;
  const auto o = quiet(dir / "s.h5");
  auto iota = [](std::uint64_t n) { return std::views::iota(std::uint64_t{0}, n); };
  RunSummary s = run(*g_env, work_job(), iota(2000), o);
  if (g_env->rank() == 0) {
    EXPECT_EQ(s.computed, 2000u);
  }
  s = run(*g_env, work_job(), iota(2000), o);
  if (g_env->rank() == 0) {
    EXPECT_EQ(s.computed, 0u);
    EXPECT_EQ(s.cached, 2000u);
    EXPECT_EQ(s.exit_status, kExitOk);
  }
  s = run(*g_env, work_job(), iota(2500), o);
  if (g_env->rank() == 0) {
    EXPECT_EQ(s.computed, 500u);
    EXPECT_EQ(s.cached, 2000u);
  }
  s = run(*g_env, work_job(2), iota(2500), o);
  if (g_env->rank() == 0) {
    EXPECT_EQ(s.computed, 2500u);
  }
  // The same task twice in one stream is computed once.
  std::vector<std::uint64_t> twice{7000, 7001, 7000, 7001};
  s = run(*g_env, work_job(), twice, o);
  if (g_env->rank() == 0) {
    EXPECT_EQ(s.computed, 2u);
    EXPECT_EQ(s.cached, 2u);
  }
}

std::uint64_t fails_on_97(const std::uint64_t& i) {
  if (i % 97 == 0) throw std::runtime_error("bad task " + std::to_string(i));
  return i * i;
}

TEST(Engine, ExceptionsAreRecordedWithTheirMessagesAndFailedTasksRetriedNextRun) {
  SharedDir dir;
  const Job<std::uint64_t, std::uint64_t> job{.name = "f97", .fn = fails_on_97};
  const auto o = quiet(dir / "s.h5");
  RunSummary s = run(*g_env, job, std::views::iota(std::uint64_t{0}, std::uint64_t{3000}), o);
  if (g_env->rank() == 0) {
    EXPECT_EQ(s.failed, 31u);  // 0, 97, ..., 2910
    EXPECT_EQ(s.computed, 2969u);
    EXPECT_EQ(s.exit_status, kExitFailedTasks);
    Store st = Store::open(o.store, {.read_only = true});
    const auto r = st.get(job.key(97));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, Status::failed);
    EXPECT_EQ(r->error, "bad task 97");
    EXPECT_EQ(std::get<std::int64_t>(st.get(job.key(5))->values.at(0)), 25);
  }
  // Stored failures are tried again, unless skipped.
  s = run(*g_env, job, std::views::iota(std::uint64_t{0}, std::uint64_t{3000}), o);
  if (g_env->rank() == 0) {
    EXPECT_EQ(s.computed, 0u);
    EXPECT_EQ(s.failed, 31u);
    EXPECT_EQ(s.cached, 2969u);
  }
  RunOptions skip = o;
  skip.skip_failed = true;
  s = run(*g_env, job, std::views::iota(std::uint64_t{0}, std::uint64_t{3000}), skip);
  if (g_env->rank() == 0) {
    EXPECT_EQ(s.failed, 31u);
    EXPECT_EQ(s.cached, 2969u);
  }
  // map() reports the task's own message.
  try {
    map(*g_env, job, std::views::iota(std::uint64_t{0}, std::uint64_t{10}), o);
    if (g_env->rank() == 0) ADD_FAILURE() << "map did not throw";
  } catch (const TaskFailedError& e) {
    EXPECT_EQ(std::string(e.what()), "task failed: bad task 0");
  }
}

// A task may fail with result values (TaskFailed): they are stored in its
// row; values that do not fit the result fields are dropped, as if it had
// failed without any.
TEST(Engine, TasksFailWithValuesThatFitTheirFields) {
  SharedDir dir;
  const Job<std::uint64_t, std::uint64_t> job{
      .name = "fv", .fn = [](const std::uint64_t& i) -> std::uint64_t {
        if (i % 4 == 1) throw TaskFailed("odd " + std::to_string(i), {Value(std::int64_t(i * 10))});
        if (i % 4 == 3) throw TaskFailed("misfit", {Value(std::string("x"))});
        if (i % 8 == 2) throw std::runtime_error("");
        return i;
      }};
  const auto o = quiet(dir / "s.h5");
  const RunSummary s = run(*g_env, job, std::views::iota(std::uint64_t{0}, std::uint64_t{400}), o);
  if (g_env->rank() == 0) {
    EXPECT_EQ(s.failed, 250u);  // 100 + 100 + 50
    Store st = Store::open(o.store, {.read_only = true});
    const auto odd = st.get(job.key(21));
    ASSERT_TRUE(odd.has_value());
    EXPECT_EQ(odd->status, Status::failed);
    EXPECT_EQ(odd->error, "odd 21");
    ASSERT_EQ(odd->values.size(), 1u);
    EXPECT_EQ(std::get<std::int64_t>(odd->values[0]), 210);
    const auto misfit = st.get(job.key(23));
    ASSERT_TRUE(misfit.has_value());
    EXPECT_EQ(misfit->error, "misfit");
    EXPECT_TRUE(misfit->values.empty());  // stand-ins are stored as no values
    const auto empty = st.get(job.key(10));
    ASSERT_TRUE(empty.has_value());
    EXPECT_EQ(empty->status, Status::failed);
    EXPECT_EQ(empty->error, "failed (an exception with an empty message)");
    EXPECT_EQ(st.get(job.key(8))->status, Status::ok);
  }
}

// A param function that throws fails only its task: the task keeps that
// message, its params are stored as zeros, and the run goes on.
TEST(Engine, ParamFunctionThatThrowsFailsOnlyItsTask) {
  SharedDir dir;
  Job<std::uint64_t, std::uint64_t> job{.name = "p13",
                                        .fn = [](const std::uint64_t& i) { return i; }};
  job.params = {Field{"i", FieldType::int64, "", "the input"}};
  job.param_values = [](const std::uint64_t& i) {
    if (i % 13 == 0) throw std::runtime_error("no params for " + std::to_string(i));
    return std::vector<Value>{static_cast<std::int64_t>(i)};
  };
  const auto o = quiet(dir / "s.h5");
  const RunSummary s = run(*g_env, job, std::views::iota(std::uint64_t{0}, std::uint64_t{500}), o);
  if (g_env->rank() == 0) {
    EXPECT_EQ(s.failed, 39u);  // 0, 13, ..., 494
    EXPECT_EQ(s.computed, 461u);
    Store st = Store::open(o.store, {.read_only = true});
    const auto bad = st.get(job.key(26));
    ASSERT_TRUE(bad.has_value());
    EXPECT_EQ(bad->status, Status::failed);
    EXPECT_EQ(bad->error, "no params for 26");
    EXPECT_EQ(std::get<std::int64_t>(bad->params.at(0)), 0);
    EXPECT_EQ(std::get<std::int64_t>(st.get(job.key(27))->params.at(0)), 27);
  }
}

// A task whose work a stop cut short (InterruptedError) is no result: the
// run stops resumable (exit 3), the task is not stored, and the next run
// computes it and what was left.
TEST(Engine, InterruptedTaskStopsTheRunAndRunsAgainOnResume) {
  SharedDir dir;
  const fs::path mark = dir / "interrupted";
  const Job<std::uint64_t, std::uint64_t> job{
      .name = "cut", .fn = [mark](const std::uint64_t& i) {
        if (i == 37) {
          const int fd = ::open(mark.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
          if (fd >= 0) {
            ::close(fd);
            throw InterruptedError("cut short by the run's stop");
          }
        }
        return i * 3;
      }};
  const auto o = quiet(dir / "s.h5");
  const auto tasks = std::views::iota(std::uint64_t{0}, std::uint64_t{400});
  RunSummary s = run(*g_env, job, tasks, o);
  if (g_env->rank() == 0) {
    EXPECT_EQ(s.state, RunState::stopped);
    EXPECT_EQ(s.exit_status, kExitIncomplete);
    EXPECT_EQ(s.failed, 0u);
    Store st = Store::open(o.store, {.read_only = true});
    EXPECT_FALSE(st.get(job.key(37)).has_value());
    EXPECT_LT(st.size(), 400u);
  }
  s = run(*g_env, job, tasks, o);
  if (g_env->rank() == 0) {
    EXPECT_EQ(s.state, RunState::finished);
    EXPECT_EQ(s.exit_status, kExitOk);
    EXPECT_GE(s.computed, 1u);
    EXPECT_EQ(s.computed + s.cached, 400u);
    Store st = Store::open(o.store, {.read_only = true});
    EXPECT_EQ(std::get<std::int64_t>(st.get(job.key(37))->values.at(0)), 111);
    EXPECT_EQ(st.size(), 400u);
  }
}

TEST(Engine, RetriesHappen) {
  SharedDir dir;
  const fs::path marks = dir / "marks";
  if (g_env->rank() == 0) fs::create_directory(marks);
  MPI_Barrier(MPI_COMM_WORLD);
  // Every 10th task fails on its first attempt only (a marker file remembers).
  const Job<std::uint64_t, std::uint64_t> job{
      .name = "flaky", .fn = [marks](const std::uint64_t& i) {
        if (i % 10 == 0) {
          const auto m = marks / std::to_string(i);
          const int fd = ::open(m.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
          if (fd >= 0) {
            ::close(fd);
            throw std::runtime_error("first try");
          }
        }
        return i + 1;
      }};
  RunOptions o = quiet(dir / "s.h5");
  o.retries = 1;
  const auto results = map(*g_env, job, std::views::iota(std::uint64_t{0}, std::uint64_t{1000}), o);
  if (g_env->rank() == 0) {
    ASSERT_EQ(results.size(), 1000u);
    for (std::uint64_t i = 0; i < 1000; ++i) EXPECT_EQ(results[i], i + 1);
  }
}

TEST(Engine, FailFastStops) {
  SharedDir dir;
  const Job<std::uint64_t, std::uint64_t> job{
      .name = "ff", .fn = [](const std::uint64_t& i) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        if (i == 300) throw std::runtime_error("stop here");
        return i;
      }};
  RunOptions o = quiet(dir / "s.h5");
  o.fail_fast = true;
  const RunSummary s =
      run(*g_env, job, std::views::iota(std::uint64_t{0}, std::uint64_t{20000}), o);
  if (g_env->rank() == 0) {
    EXPECT_EQ(s.state, RunState::failed);
    EXPECT_EQ(s.exit_status, kExitFailedTasks);
    EXPECT_EQ(s.failed, 1u);
    EXPECT_LT(s.computed, 19999u);
    EXPECT_EQ(Store::open(o.store, {.read_only = true}).runs().back().state, RunState::failed);
  }
}

TEST(Engine, HaltAfterACountOrARateOfFailures) {
  SharedDir dir;
  const Job<std::uint64_t, std::uint64_t> job{
      .name = "halt", .fn = [](const std::uint64_t& i) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        if (i % 10 == 0 && i >= 200) throw std::runtime_error("every tenth from 200");
        return i;
      }};
  for (const bool by_rate : {false, true}) {
    RunOptions o = quiet(dir / (by_rate ? "r.h5" : "n.h5"));
    if (by_rate)
      o.max_failure_rate = 0.05;  // 5 %: reached when tenth-fails pile up past 200
    else
      o.max_failures = 5;
    const RunSummary s =
        run(*g_env, job, std::views::iota(std::uint64_t{0}, std::uint64_t{20000}), o);
    if (g_env->rank() == 0) {
      EXPECT_EQ(s.state, RunState::failed) << by_rate;
      EXPECT_EQ(s.exit_status, kExitFailedTasks);
      EXPECT_GE(s.failed, by_rate ? 1u : 5u);
      EXPECT_GE(static_cast<double>(s.failed), (by_rate ? 0.05 : 0.0) * (s.computed + s.failed));
      EXPECT_LT(s.computed + s.failed, 20000u) << "halted before the end";
    }
  }
}

TEST(Engine, FixedBatchesAndProgressJson) {
  SharedDir dir;
  RunOptions o = quiet(dir / "s.h5");
  o.batch = 7;
  o.progress = ProgressMode::json;
  o.progress_file = dir / "progress.jsonl";
  const auto results =
      map(*g_env, work_job(), std::views::iota(std::uint64_t{0}, std::uint64_t{500}), o);
  if (g_env->rank() != 0) return;
  ASSERT_EQ(results.size(), 500u);
  std::ifstream in(o.progress_file);
  std::string line, last;
  while (std::getline(in, line)) last = line;
  EXPECT_NE(last.find("\"state\":\"finished\""), std::string::npos) << last;
  EXPECT_NE(last.find("\"done\":500"), std::string::npos) << last;
  EXPECT_NE(last.find("\"computed\":500"), std::string::npos) << last;
}

// A sized range's size is the total from the first report (percent, ETA);
// an unsized one is counted as it is read ("total_known":false until the
// master has read its end).
TEST(Engine, ProgressKnowsTheTotalOfASizedRangeFromTheStart) {
  SharedDir dir;
  const Job<std::uint64_t, std::uint64_t> job{.name = "double",
                                              .fn = [](const std::uint64_t& i) { return 2 * i; }};
  constexpr std::uint64_t n = 30000;
  RunOptions o = quiet(dir / "sized.h5");
  o.batch = 100;                   // the master reads 8,192 tasks ahead: the end comes late
  o.progress = ProgressMode::log;  // a report at each 10 %, when the total is known
  o.progress_file = dir / "sized.jsonl";
  run(*g_env, job, std::views::iota(std::uint64_t{0}, n), o);
  o.store = dir / "unsized.h5";
  o.progress_file = dir / "unsized.jsonl";
  run(*g_env, job, std::views::iota(std::uint64_t{0}, n) | std::views::filter([](std::uint64_t) {
                     return true;
                   }),
      o);
  if (g_env->rank() != 0) return;
  // Running reports made while fewer than 15,000 tasks were done: the master
  // had read at most 15,000 + 8,192 + a 4,096 chunk + what is in flight.
  auto early = [](const fs::path& file) {
    std::vector<std::string> lines;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
      const auto at = line.find("\"done\":");
      if (line.find("\"state\":\"running\"") != std::string::npos && at != std::string::npos &&
          std::stoull(line.substr(at + 7)) < 15000)
        lines.push_back(line);
    }
    return lines;
  };
  const auto sized = early(dir / "sized.jsonl");
  ASSERT_FALSE(sized.empty());
  for (const auto& line : sized)
    EXPECT_NE(line.find("\"total\":30000,\"total_known\":true"), std::string::npos) << line;
  for (const auto& line : early(dir / "unsized.jsonl"))
    EXPECT_NE(line.find("\"total_known\":false"), std::string::npos) << line;
  EXPECT_EQ(Store::open(dir / "sized.h5", {.read_only = true}).size(), n);
}

// A full memtable is committed and written to a segment during the run,
// however long the checkpoint interval: memory stays bounded. Without that,
// the whole run would sit in memory until one segment at the end.
TEST(Engine, FullMemtablesAreFlushedDuringALongCheckpointInterval) {
  SharedDir dir;
  const Job<std::uint64_t, std::uint64_t> job{.name = "double",
                                              .fn = [](const std::uint64_t& i) { return 2 * i; }};
  RunOptions o = quiet(dir / "s.h5");
  o.checkpoint_seconds = 3600;
  o.compact = false;
  // A record and a task key each: the default 2^20 fill a memtable every 2^19 tasks.
  constexpr std::uint64_t n = 1100000;
  const RunSummary s = run(*g_env, job, std::views::iota(std::uint64_t{0}, n), o);
  if (g_env->rank() != 0) return;
  EXPECT_EQ(s.computed, n);
  std::size_t segments = 0;
  for (const auto& e : fs::directory_iterator(Store::sidecar(dir / "s.h5")))
    segments +=
        e.path().extension() == ".h5" && !e.path().filename().string().starts_with("base-") ? 1 : 0;
  EXPECT_GE(segments, 3u) << "two full memtables during the run, the rest at close";
  EXPECT_EQ(Store::open(dir / "s.h5", {.read_only = true}).size(), n);
}

TEST(Engine, BadOptionsAreUsageErrorsOnEveryRank) {
  RunOptions o;
  o.batch_seconds = 0;
  EXPECT_THROW(run(*g_env, work_job(), std::views::iota(std::uint64_t{0}, std::uint64_t{1}), o),
               UsageError);
  o = RunOptions{};
  o.time_limit = 10;
  o.grace = 20;
  EXPECT_THROW(run(*g_env, work_job(), std::views::iota(std::uint64_t{0}, std::uint64_t{1}), o),
               UsageError);
}

TEST(Engine, LockedStoreFailsOnRankZeroWithoutHangingWorkers) {
  SharedDir dir;
  std::unique_ptr<Store> holder;
  if (g_env->rank() == 0) holder = std::make_unique<Store>(Store::open(dir / "s.h5"));
  const auto o = quiet(dir / "s.h5");
  if (g_env->rank() == 0) {
    EXPECT_THROW(run(*g_env, work_job(), std::views::iota(std::uint64_t{0}, std::uint64_t{10}), o),
                 StoreLockedError);
  } else {
    EXPECT_EQ(run(*g_env, work_job(), std::views::iota(std::uint64_t{0}, std::uint64_t{0}), o)
                  .exit_status,
              kExitRuntime);
  }
}

// Open MPI's blocking collectives poll a core: a worker waiting for a busy
// rank 0 (here late to start; elsewhere opening, checking or compacting a
// store) must sleep instead, leaving the core to rank 0.
TEST(Engine, WorkersSleepWhileRankZeroIsBusy) {
  SharedDir dir;
  const auto o = quiet(dir / "s.h5");
  const auto tasks = std::views::iota(std::uint64_t{0}, std::uint64_t{10});
  if (g_env->rank() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    EXPECT_EQ(run(*g_env, work_job(), tasks, o).exit_status, kExitOk);
    return;
  }
  auto cpu_seconds = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
  };
  const double cpu0 = cpu_seconds();
  const auto wall0 = std::chrono::steady_clock::now();
  run(*g_env, work_job(), tasks, o);
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  const double cpu = cpu_seconds() - cpu0;
  EXPECT_GE(wall, 1.0);
  EXPECT_LT(cpu, 0.25 * wall) << "rank " << g_env->rank() << " used " << cpu << " s of CPU in "
                              << wall << " s waiting";
}

}  // namespace

int main(int argc, char** argv) {
  Environment env(argc, argv);
  g_env = &env;
  ::testing::InitGoogleTest(&argc, argv);
  if (env.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return any;
}
