#include "mpibatch/task_key.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <set>

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
