// The automatic batch policy and the read-ahead window (docs/ARCHITECTURE.md).
#include "engine/batch_sizer.hpp"

#include <gtest/gtest.h>

namespace {

using mpibatch::detail::BatchSizer;
using mpibatch::detail::read_ahead;

TEST(BatchSizer, GrowsAtMostTwofoldTowardTheTargetAndStopsAtTheCap) {
  BatchSizer s(0, 0.2);
  EXPECT_EQ(s.next(0, 2), 1u);
  s.observe(1, 0.001);  // 1 ms a task: 200 tasks make 0.2 s
  EXPECT_EQ(s.next(0, 2), 2u);
  EXPECT_EQ(s.next(0, 2), 4u);
  for (int i = 0; i < 20; ++i) s.next(0, 2);
  EXPECT_EQ(s.current(), 200u);
  BatchSizer tiny(0, 0.2);
  tiny.observe(1000, 1e-6);  // 1 ns a task: the target would be 2*10^8
  std::size_t n = 0;
  for (int i = 0; i < 40; ++i) n = tiny.next(0, 2);
  EXPECT_EQ(n, BatchSizer::kMax);
}

TEST(BatchSizer, ShrinksAtTheEndAndFixedStaysFixed) {
  BatchSizer s(0, 0.2);
  s.observe(1, 0.001);
  for (int i = 0; i < 20; ++i) s.next(0, 2);
  EXPECT_EQ(s.next(100, 2), 25u);  // left / (2 * workers)
  EXPECT_EQ(s.next(1, 2), 1u);
  BatchSizer f(7, 0.2);
  f.observe(1, 10.0);
  EXPECT_EQ(f.next(3, 2), 7u);
}

TEST(BatchSizer, ReadAheadIsFourBatchesAWorkerWithinBounds) {
  EXPECT_EQ(read_ahead(1, 1), 8192u);
  EXPECT_EQ(read_ahead(3, 1000), 12000u);
  EXPECT_EQ(read_ahead(4000, BatchSizer::kMax), std::size_t{1} << 20);
}

}  // namespace
