// Memory: joblib's Memory.cache for a C++ function, backed by a store.
#include "mpibatch/memory.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <utility>

namespace {

using namespace mpibatch;
namespace fs = std::filesystem;

TEST(Memory, CachesAcrossCallsAndProcesses) {
  const fs::path dir =
      fs::temp_directory_path() / ("mpibatch-memory-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  int calls = 0;
  auto job = Job<int, double>{.name = "half", .fn = [&calls](const int& x) {
                                ++calls;
                                if (x < 0) throw std::invalid_argument("negative");
                                return x / 2.0;
                              }};
  {
    Memory memory(dir / "cache.h5");
    auto half = memory.cache(job);
    EXPECT_EQ(half(3), 1.5);
    EXPECT_EQ(half(3), 1.5);
    EXPECT_EQ(calls, 1);
    EXPECT_THROW(half(-1), std::invalid_argument);
    EXPECT_THROW(half(-1), std::invalid_argument);  // failures are not cached as results
    EXPECT_EQ(calls, 3);
  }
  Memory again(dir / "cache.h5");
  auto half = again.cache(job);
  EXPECT_EQ(half(3), 1.5);
  EXPECT_EQ(calls, 3);  // served from the store a new Memory opened
  fs::remove_all(dir);
}

// A store's definition may be wider than a job's (Store::define_job widens):
// Memory writes records in its job's own order, so it refuses another.
TEST(Memory, RefusesAStoredDefinitionInAnotherOrder) {
  const fs::path dir =
      fs::temp_directory_path() / ("mpibatch-memory-order-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  using Pair = std::pair<std::int64_t, std::int64_t>;
  auto job = Job<Pair, std::int64_t>{.name = "sum",
                                     .fn = [](const Pair& p) { return p.first + p.second; }};
  job.params = {Field{"a", FieldType::int64, "", ""}, Field{"b", FieldType::int64, "", ""}};
  job.param_values = [](const Pair& p) { return std::vector<Value>{p.first, p.second}; };
  {
    Memory memory(dir / "cache.h5");
    EXPECT_EQ(memory.cache(job)(Pair{7, 8}), 15);
  }
  std::swap(job.params[0], job.params[1]);
  Memory again(dir / "cache.h5");
  EXPECT_THROW(again.cache(job), UsageError);
  fs::remove_all(dir);
}

}  // namespace
