// Whole runs under mpirun, stopped by signals, by the time limit, and by
// kill -9; then resumed. engine_child appends each task's index to a side
// file whenever it computes it, so the tests count how often each task ran.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "mpibatch/job.hpp"
#include "mpibatch/store.hpp"
#include "test_support.hpp"

namespace {

using namespace mpibatch;
using mpibatch::test_support::TempDir;
namespace fs = std::filesystem;

struct Launch {
  pid_t pid = -1;
};

// Starts `mpirun -n np engine_child args...` in a session of its own (Open
// MPI gives each rank its own process group, so the session is what holds
// the whole job).
Launch launch(int np, const std::vector<std::string>& args, const fs::path& log) {
  std::vector<std::string> argv{"mpirun", "-n", std::to_string(np), "--oversubscribe",
                                ENGINE_CHILD_EXE};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> c;
    for (auto& a : argv) c.push_back(a.data());
    c.push_back(nullptr);
    ::execvp("mpirun", c.data());
    ::_exit(127);
  }
  return Launch{pid};
}

// Exit status, or 128 + signal.
int wait_for(const Launch& l) {
  int status = 0;
  ::waitpid(l.pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::map<std::uint64_t, int> count_runs(const fs::path& side) {
  std::map<std::uint64_t, int> runs;
  std::ifstream in(side);
  std::uint64_t i;
  while (in >> i) ++runs[i];
  return runs;
}

const Job<std::uint64_t, std::uint64_t> kSlow{.name = "slow"};  // for keys only

// Every task 0..n-1 is stored, ok, with 3*i.
void expect_complete(const fs::path& store, std::uint64_t n) {
  Store s = Store::open(store, {.read_only = true});
  EXPECT_TRUE(s.problems().empty());
  EXPECT_EQ(s.size(), n);
  for (std::uint64_t i = 0; i < n; i += 97) {
    const auto r = s.get(kSlow.key(i));
    ASSERT_TRUE(r.has_value()) << i;
    EXPECT_EQ(from_bytes<std::uint64_t>(r->result), 3 * i);
  }
}

// The run's output, for failure messages.
std::string read_all(const fs::path& p) {
  std::ifstream in(p);
  std::string all, line;
  while (std::getline(in, line)) all += line + "\n";
  return all;
}

class Stop : public ::testing::TestWithParam<int> {};

// A stop request drains: in-flight work is collected and committed, the run
// is recorded as stopped, the exit status is 3, and the rerun computes only
// what is left, each task exactly once over both runs.
// Sends sig to the processes of the job's session (mpirun's pid is its id)
// named name, or to all of them.
void signal_session(pid_t session, int sig, const char* name = nullptr) {
  std::string cmd = "pkill -" + std::to_string(sig) + " -s " + std::to_string(session);
  if (name != nullptr) cmd += std::string(" -x ") + name;
  if (std::system(cmd.c_str()) < 0) ADD_FAILURE() << cmd;
}

// Task sleep in us so that a run takes about n * 2 ms whatever the ranks.
std::string sleep_for_ranks(int np) {
  return std::to_string(2000 * std::max(1, np - 1));
}

void stop_and_resume(int np, const std::function<void(pid_t session)>& send) {
  TempDir dir;
  const auto store = dir / "s.h5", side = dir / "side.txt", log = dir / "log.txt";
  const std::uint64_t n = 1500;
  const std::vector<std::string> args{store.string(), std::to_string(n), sleep_for_ranks(np),
                                      side.string()};
  const Launch first = launch(np, args, log);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  send(first.pid);
  EXPECT_EQ(wait_for(first), kExitIncomplete) << read_all(log);
  {
    Store s = Store::open(store, {.read_only = true});
    EXPECT_TRUE(s.problems().empty());
    ASSERT_EQ(s.runs().size(), 1u);
    EXPECT_EQ(s.runs()[0].state, RunState::stopped);
    EXPECT_LT(s.size(), n) << "stopped too late to test anything";
    EXPECT_EQ(s.size(), count_runs(side).size()) << "computed but not stored";
  }
  EXPECT_EQ(wait_for(launch(np, args, log)), kExitOk) << read_all(log);
  expect_complete(store, n);
  const auto runs = count_runs(side);
  EXPECT_EQ(runs.size(), n);
  for (const auto& [i, c] : runs) EXPECT_EQ(c, 1) << "task " << i << " ran " << c << " times";
}

TEST_P(Stop, Sigusr1ToMpirun) {
  stop_and_resume(GetParam(), [](pid_t mpirun) { ::kill(mpirun, SIGUSR1); });
}

TEST_P(Stop, SigtermToEveryRankAsSlurmSends) {
  stop_and_resume(GetParam(), [](pid_t session) {
    // Not mpirun itself: it answers SIGTERM by killing the job (exit 1).
    signal_session(session, SIGTERM, "engine_child");
  });
}

TEST_P(Stop, TimeLimitMinusGrace) {
  TempDir dir;
  const auto store = dir / "s.h5", side = dir / "side.txt", log = dir / "log.txt";
  const std::vector<std::string> args{store.string(), "1500", sleep_for_ranks(GetParam()),
                                      side.string(),  "2.5",  "1"};
  EXPECT_EQ(wait_for(launch(GetParam(), args, log)), kExitIncomplete) << read_all(log);
  Store s = Store::open(store, {.read_only = true});
  EXPECT_EQ(s.runs().at(0).state, RunState::stopped);
  EXPECT_GT(s.size(), 0u);
  EXPECT_LT(s.size(), 1500u);
}

// A task that outlasts the time limit: the stop's one deadline covers the
// goodbyes too, so the run records itself stopped before the limit (Slurm
// kills the job then), and the job is aborted rather than left waiting.
// One rank too: its tasks run on a thread, so the master keeps the time.
TEST_P(Stop, TimeLimitKeptWhenATaskOutlastsIt) {
  TempDir dir;
  const auto store = dir / "s.h5", side = dir / "side.txt", log = dir / "log.txt";
  const double limit = 6;
  const std::vector<std::string> args{store.string(),        "8", "60000000", side.string(),
                                      std::to_string(limit), "2"};
  EXPECT_EQ(wait_for(launch(GetParam(), args, log)), kExitIncomplete) << read_all(log);
  Store s = Store::open(store, {.read_only = true});
  EXPECT_TRUE(s.problems().empty());
  const RunInfo run = s.runs().at(0);
  EXPECT_EQ(run.state, RunState::stopped);
  EXPECT_LT(run.end_time - run.start_time, limit) << read_all(log);
  EXPECT_EQ(s.size(), 0u);
  EXPECT_NE(read_all(log).find("workers did not stop in time"), std::string::npos) << read_all(log);
}

TEST_P(Stop, SecondSignalStopsAtOnceStoreStaysConsistent) {
  TempDir dir;
  const auto store = dir / "s.h5", side = dir / "side.txt", log = dir / "log.txt";
  // 300 ms tasks: the first signal would wait for the batches in hand.
  const std::vector<std::string> args{store.string(), "200", "300000", side.string()};
  const Launch l = launch(GetParam(), args, log);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ::kill(l.pid, SIGUSR1);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ::kill(l.pid, SIGUSR1);
  EXPECT_EQ(wait_for(l), kExitIncomplete) << read_all(log);
  {
    Store s = Store::open(store, {.read_only = true});
    EXPECT_TRUE(s.problems().empty());
    EXPECT_EQ(s.runs().at(0).state, RunState::stopped);
  }
  const std::vector<std::string> fast{store.string(), "200", "1000", side.string()};
  EXPECT_EQ(wait_for(launch(GetParam(), fast, log)), kExitOk) << read_all(log);
  expect_complete(store, 200);
}

// kill -9 of mpirun and every rank: the rerun ends with every result right,
// and only tasks not committed at the kill ran twice.
TEST_P(Stop, KillNineOfTheWholeJobThenResume) {
  TempDir dir;
  const auto store = dir / "s.h5", side = dir / "side.txt", log = dir / "log.txt";
  const std::uint64_t n = 1500;
  const std::vector<std::string> args{store.string(), std::to_string(n),
                                      sleep_for_ranks(GetParam()), side.string()};
  const Launch first = launch(GetParam(), args, log);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  signal_session(first.pid, SIGKILL);  // mpirun and every rank at once
  EXPECT_EQ(wait_for(first), 128 + SIGKILL);
  for (int i = 0;
       i < 50 &&
       std::system(("pgrep -s " + std::to_string(first.pid) + " >/dev/null").c_str()) == 0;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  std::set<std::uint64_t> committed;
  {
    Store s = Store::open(store, {.read_only = true});
    EXPECT_TRUE(s.problems().empty());
    s.for_each([&](const Record& r) { committed.insert(from_bytes<std::uint64_t>(r.result) / 3); });
  }
  const auto before = count_runs(side);
  EXPECT_GT(committed.size(), 0u);
  EXPECT_LT(committed.size(), n);

  EXPECT_EQ(wait_for(launch(GetParam(), args, log)), kExitOk) << read_all(log);
  expect_complete(store, n);
  const auto runs = count_runs(side);
  EXPECT_EQ(runs.size(), n);
  std::size_t twice = 0;
  for (const auto& [i, c] : runs) {
    if (committed.count(i)) {
      EXPECT_EQ(c, 1) << "committed task " << i << " was computed again";
    } else {
      EXPECT_LE(c, 2);
      twice += c == 2;
    }
  }
  // Only what ran between the last commit and the kill runs again.
  EXPECT_LE(twice, before.size() - committed.size());
  Store s = Store::open(store, {.read_only = true});
  EXPECT_EQ(s.runs().at(0).state, RunState::crashed);
  EXPECT_EQ(s.runs().at(1).state, RunState::finished);
}

INSTANTIATE_TEST_SUITE_P(Ranks, Stop, ::testing::Values(1, 2, 3, 4),
                         [](const auto& p) { return "np" + std::to_string(p.param); });

}  // namespace
