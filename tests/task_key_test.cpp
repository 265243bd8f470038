#include "mpibatch/task_key.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <set>
#include <string>

#include "mpibatch/error.hpp"
#include "mpibatch/serialization.hpp"

namespace {

using mpibatch::task_key;
using mpibatch::TaskKey;

TEST(TaskKey, SameInputSameKeyAndAnyChangeChangesIt) {
  const auto input = mpibatch::to_bytes(std::string("x=1"));
  const TaskKey k = task_key("pi", 1, input);
  EXPECT_EQ(k, task_key("pi", 1, input));
  EXPECT_NE(k, task_key("pi", 2, input));
  EXPECT_NE(k, task_key("pj", 1, input));
  EXPECT_NE(k, task_key("pi", 1, mpibatch::to_bytes(std::string("x=2"))));
  // Length framing: moving bytes between name and input changes the key.
  EXPECT_NE(task_key("ab", 1, "c"), task_key("a", 1, "bc"));
}

// Keys are what stores are indexed by: a change of their definition would
// silently turn every stored result into a miss. These were computed by the
// first release (XXH3-128 streamed over name length, name, version, input).
TEST(TaskKey, KeysOfEarlierReleasesAreUnchanged) {
  auto u64 = [](std::uint64_t v) { return mpibatch::to_bytes(v); };
  EXPECT_EQ(task_key("demo", 7, u64(0)).hex(), "1a031d6db47436c25fd046466bf44f78");
  EXPECT_EQ(task_key("demo", 7, u64(1)).hex(), "b94195091f4e9cedf30ab9500a7818cd");
  EXPECT_EQ(task_key("demo", 7, u64(12345)).hex(), "25032a4c6cddfa5291cbb1e3d5b1db3d");
  std::string big(1000, ' ');  // over XXH3's short-input paths
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  EXPECT_EQ(task_key("sweep", -3, big).hex(), "1cc4b17047dee916d01ede116326b902");
  EXPECT_EQ(task_key("", 0, "").hex(), "e5189a9599e3f86205ea23ef06e28b2d");
  EXPECT_EQ(task_key(std::string(300, 'n'), 1, "abc").hex(), "7d3b677b6c6c7eddfccb24a4de70cde4");
}

TEST(TaskKey, ManyInputsGiveDistinctKeys) {
  std::set<TaskKey> keys;
  for (std::uint64_t i = 0; i < 100000; ++i) keys.insert(task_key("j", 1, mpibatch::to_bytes(i)));
  EXPECT_EQ(keys.size(), 100000u);
}

TEST(TaskKey, HexRoundTripAndErrors) {
  const TaskKey k = task_key("pi", 3, "abc");
  const std::string hex = k.hex();
  ASSERT_EQ(hex.size(), 32u);
  EXPECT_EQ(TaskKey::from_hex(hex), k);
  EXPECT_EQ(TaskKey::from_hex("000000000000000100000000000000ff"), (TaskKey{1, 255}));
  EXPECT_THROW(TaskKey::from_hex("xyz"), mpibatch::UsageError);
  EXPECT_THROW(TaskKey::from_hex(std::string(31, '0') + "g"), mpibatch::UsageError);
}

// Another process (the key_print helper) computes the same keys.
TEST(TaskKey, SameKeyInAnotherProcess) {
  for (int i : {0, 1, 12345}) {
    const std::string cmd = std::string(KEY_PRINT_EXE) + " demo 7 " + std::to_string(i);
    FILE* p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::array<char, 64> buf{};
    ASSERT_NE(std::fgets(buf.data(), buf.size(), p), nullptr);
    ASSERT_EQ(::pclose(p), 0);
    EXPECT_EQ(std::string(buf.data(), 32),
              task_key("demo", 7, mpibatch::to_bytes(static_cast<std::uint64_t>(i))).hex());
  }
}

}  // namespace
