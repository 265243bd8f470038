// MemTable::live(): the rows a segment stores, per job, in key order.
#include "store/mem_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace {

using mpibatch::TaskKey;
using mpibatch::detail::MemTable;

// Several jobs interleaved, some rows superseded, sizes around the bucket
// thresholds: live() equals a plain sort of the rows that are not superseded.
TEST(MemTable, LiveRowsArePerJobInKeyOrderAndComplete) {
  std::mt19937_64 rng(7);
  for (std::size_t n : {0u, 1u, 8u, 9u, 100u, 20000u}) {
    MemTable m;
    const std::uint16_t a = m.job_index("a", 1);
    const std::uint16_t b = m.job_index("b", 2);
    const std::uint16_t c = m.job_index("a", 3);  // only superseded rows
    std::map<MemTable::JobVersion, std::vector<MemTable::LiveRow>> want;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint16_t job = i % 3 == 0 ? b : a;
      // Low keys too, so that buckets of the top bits are uneven.
      const TaskKey key{i % 5 == 0 ? rng() >> 40 : rng(), rng()};
      const std::size_t row = m.add_encoded(key, job, false, i * 10, 10);
      const bool superseded = i % 7 == 3;
      m.entries[row].superseded = superseded;
      if (!superseded)
        want[m.jobs[job]].push_back({key, i * 10, 10, static_cast<std::uint32_t>(row)});
    }
    m.entries[m.add_encoded(TaskKey{1, 1}, c, false, 0, 1)].superseded = true;
    for (auto& [job, rows] : want) std::sort(rows.begin(), rows.end());
    const auto got = m.live();
    ASSERT_EQ(got.size(), want.size()) << n << " rows";
    for (const auto& [job, rows] : want) {
      ASSERT_TRUE(got.contains(job));
      const auto& g = got.at(job);
      ASSERT_EQ(g.size(), rows.size());
      for (std::size_t i = 0; i < rows.size(); ++i) {
        EXPECT_EQ(g[i].key, rows[i].key);
        EXPECT_EQ(g[i].row, rows[i].row);
        EXPECT_EQ(g[i].offset, rows[i].offset);
      }
    }
  }
}

}  // namespace
