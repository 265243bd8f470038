// kill -9 of a writer at random moments: after each kill the store opens,
// every committed record is intact bit for bit, nothing uncommitted shows,
// and appending goes on.
#include <absl/container/flat_hash_map.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include "test_support.hpp"

namespace {

using namespace mpibatch;
using mpibatch::test_support::TempDir;

struct Child {
  pid_t pid = -1;
  int out = -1;  // read end of its stdout
};

Child spawn(const std::string& store, std::uint64_t start) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe");
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    const std::string s = std::to_string(start);
    ::execl(CRASH_WRITER_EXE, CRASH_WRITER_EXE, store.c_str(), s.c_str(), nullptr);
    ::_exit(127);
  }
  ::close(fds[1]);
  return Child{pid, fds[0]};
}

// The last "C n" the child printed, or `none`.
std::uint64_t last_reported(int fd, std::uint64_t none) {
  std::string all;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) all.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  const auto pos = all.rfind("C ", all.size() >= 2 ? all.size() - 2 : 0);
  if (pos == std::string::npos) return none;
  return std::strtoull(all.c_str() + pos + 2, nullptr, 10);
}

// Checks the whole store; returns the number of committed records.
std::uint64_t verify(const std::string& path, std::uint64_t start, std::uint64_t reported,
                     std::uint64_t limit) {
  if (start == 0 && reported == 0) {
    // A kill in the first milliseconds can come before the writer created
    // the store: then there is nothing, and nothing was committed.
    try {
      Store::open(path, {.read_only = true});
    } catch (const NotAStoreError&) {
      return 0;
    }
  }
  Store s = Store::open(path, {.read_only = true});
  EXPECT_TRUE(s.problems().empty()) << s.problems()[0].file << ": " << s.problems()[0].what;
  const std::uint64_t m = s.size();

  // m must be a commit boundary of the last writer, at or past what it reported.
  std::uint64_t b = start;
  for (std::uint64_t c = 0; b < m; ++c) b += test_support::crash_batch_size(start, c);
  EXPECT_EQ(b, m) << "store holds " << m << " records: not a commit boundary (start " << start
                  << ")";
  EXPECT_GE(m, reported) << "a reported commit was lost";

  absl::flat_hash_map<TaskKey, std::uint64_t, TaskKeyHash> index_of;
  for (std::uint64_t i = 0; i < std::max(m, limit); ++i) index_of[test_support::demo_key(i)] = i;
  std::uint64_t seen = 0;
  s.for_each([&](const Record& r) {
    const auto it = index_of.find(r.key);
    ASSERT_NE(it, index_of.end()) << "unknown key " << r.key.hex();
    ASSERT_LT(it->second, m);
    EXPECT_EQ(r, test_support::demo_record(it->second, r.run)) << "record " << it->second;
    ++seen;
  });
  EXPECT_EQ(seen, m);

  // Each run's task list is a run of consecutive indices; together they cover [0, m).
  std::uint64_t next = 0;
  for (const RunInfo& run : s.runs()) {
    s.for_each_task(run.id, [&](const TaskKey& k, const Record* r) {
      ASSERT_NE(r, nullptr) << "task without record in run " << run.id;
      EXPECT_EQ(r->run, run.id);
      EXPECT_EQ(index_of.at(k), next);
      ++next;
    });
  }
  EXPECT_EQ(next, m);
  return m;
}

TEST(CrashTest, KillNineAtRandomMomentsLosesNothingCommitted) {
  // 30 kills by default; the "stress" ctest entry asks for 300 (or for
  // MPIBATCH_STRESS_TRIALS, which CI uses for its short form).
  const char* stress = std::getenv("MPIBATCH_CRASH_STRESS");
  const char* override_trials = std::getenv("MPIBATCH_STRESS_TRIALS");
  int trials = 30;
  if (stress != nullptr) trials = override_trials ? std::atoi(override_trials) : 300;
  const auto seed = static_cast<unsigned>(std::random_device{}());
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(5, 250);

  TempDir dir;
  const std::string path = (dir / "crash.h5").string();
  std::uint64_t committed = 0;
  for (int t = 0; t < trials && !HasFailure(); ++t) {
    Child c = spawn(path, committed);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    ::kill(c.pid, SIGKILL);
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "writer ended by itself, status " << status;
    const std::uint64_t reported = last_reported(c.out, committed);
    committed = verify(path, committed, reported, reported + 64);
  }
  RecordProperty("records", static_cast<int>(committed));
  // After all the kills a writer opens, appends, compacts.
  {
    Store s = Store::open(path);
    EXPECT_EQ(s.size(), committed);
    s.compact();
  }
  verify(path, committed, committed, committed);
}

}  // namespace
