// What the store tests share: a fixture with a fresh folder, records of
// the demo job, and a child process that crashes as kill -9 would.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "mpibatch/store.hpp"
#include "test_support.hpp"

namespace mpibatch::store_support {

namespace fs = std::filesystem;
using namespace mpibatch;
using mpibatch::test_support::demo_job;
using mpibatch::test_support::demo_key;
using mpibatch::test_support::demo_record;
using mpibatch::test_support::TempDir;

// Each test gets its own folder, removed afterwards.
class StoreTest : public ::testing::Test {
 protected:
  TempDir dir;
};

// Runs fn in a child process. fn must end with crash(): _exit skips the
// Store's destructor (no close, no commit), as a kill -9 would.
[[noreturn]] inline void crash() {
  ::_exit(0);
}

template <class F>
void in_crashing_child(F fn) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int code = 0;
    try {
      fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      code = 1;
    }
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
}

inline void append_range(Store& s, std::uint64_t from, std::uint64_t to, std::int64_t run = 1) {
  std::vector<Record> batch;
  for (std::uint64_t i = from; i < to; ++i) batch.push_back(demo_record(i, run));
  s.append(batch);
}

// A child commits `commits` groups of 10 records, then crashes.
inline void commit_groups_then_crash(const fs::path& path, std::uint64_t commits) {
  in_crashing_child([&] {
    Store s = Store::open(path);
    s.define_job(demo_job());
    for (std::uint64_t c = 0; c < commits; ++c) {
      append_range(s, c * 10, c * 10 + 10);
      s.commit();
    }
    crash();
  });
}

inline void expect_exactly(const Store& s, std::uint64_t n) {
  EXPECT_EQ(s.size(), n);
  for (std::uint64_t i = 0; i < n; ++i) {
    auto r = s.get(demo_key(i));
    ASSERT_TRUE(r.has_value()) << "record " << i;
    EXPECT_EQ(*r, demo_record(i, r->run)) << "record " << i;
  }
  EXPECT_FALSE(s.get(demo_key(n)).has_value());
}

inline fs::path only_log(const fs::path& dir) {
  fs::path found;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".log" && fs::file_size(e.path()) > 16) found = e.path();
  return found;
}

}  // namespace mpibatch::store_support
