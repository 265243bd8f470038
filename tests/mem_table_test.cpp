// MemTable::live(): the rows a segment stores, per job, in the order appended.
#include "store/mem_table.hpp"

#include <gtest/gtest.h>

#include <random>

namespace {

using mpibatch::TaskKey;
using mpibatch::detail::MemTable;

// Several jobs interleaved, some rows superseded, a job with only
// superseded rows: live() holds exactly the rows not superseded, per job,
// in the order they were appended (so the flush reads the arena in order).
TEST(MemTable, LiveRowsArePerJobInAppendedOrderAndComplete) {
  std::mt19937_64 rng(7);
  for (std::size_t n : {0u, 1u, 9u, 20000u}) {
    MemTable m;
    const std::uint16_t a = m.job_index("a", 1);
    const std::uint16_t b = m.job_index("b", 2);
    const std::uint16_t c = m.job_index("a", 3);  // only superseded rows
    std::map<mpibatch::JobId, std::vector<std::size_t>> want;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint16_t job = rng() % 3 == 0 ? b : a;
      const std::size_t row = m.add_encoded(TaskKey{rng(), rng()}, job, false, i * 10, 10);
      const bool superseded = i % 7 == 3;
      m.entries[row].superseded = superseded;
      if (!superseded) want[m.jobs[job]].push_back(row);
    }
    m.entries[m.add_encoded(TaskKey{1, 1}, c, false, n * 10, 1)].superseded = true;
    const auto got = m.live();
    ASSERT_EQ(got.size(), want.size()) << n << " rows";
    for (const auto& [job, rows] : want) {
      ASSERT_TRUE(got.contains(job));
      const auto& g = got.at(job);
      ASSERT_EQ(g.size(), rows.size());
      for (std::size_t i = 0; i < rows.size(); ++i) {
        EXPECT_EQ(g[i].row, rows[i]);
        EXPECT_EQ(g[i].offset, rows[i] * 10);
        EXPECT_EQ(g[i].size, 10u);
      }
    }
  }
}

}  // namespace
