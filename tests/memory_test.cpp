// Memory: joblib's Memory.cache for a C++ function, backed by a store.
#include "mpibatch/memory.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>

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

}  // namespace
