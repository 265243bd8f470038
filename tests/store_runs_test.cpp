// A run's counts in its metadata, and readers that open only the metadata.
#include <gtest/gtest.h>

#include "mpibatch/error.hpp"
#include "mpibatch/store.hpp"
#include "test_support.hpp"

namespace {

using namespace mpibatch;
using mpibatch::test_support::demo_job;
using mpibatch::test_support::demo_key;
using mpibatch::test_support::demo_record;
using mpibatch::test_support::TempDir;

RunCounts counts(std::int64_t computed) {
  return RunCounts{.total = 100,
                   .cached = 3,
                   .computed = computed,
                   .failed = 1,
                   .per_rank = {0, computed / 2, computed - computed / 2 + 1}};
}

RunInfo only_run(const Store& s) {
  EXPECT_EQ(s.runs().size(), 1u);
  return s.runs().at(0);
}

// Counts are durable at each commit, through a segment flush, a compaction
// and a crash's replay; a metadata reader sees what a full reader sees.
TEST(StoreRuns, CountsAreKeptAtEachCommitAndReadWithoutTheIndex) {
  TempDir dir;
  const auto path = dir / "s.h5";
  Store w = Store::open(path, {.segment_records = 25});
  w.define_job(demo_job());
  const std::int64_t run = w.begin_run(RunInfo{.command_line = "x", .ranks = 3});
  for (std::int64_t c = 1; c <= 6; ++c) {
    std::vector<Record> batch;
    for (std::uint64_t i = 0; i < 10; ++i)
      batch.push_back(demo_record(static_cast<std::uint64_t>(c) * 10 + i, run));
    w.append(batch);
    w.update_run(run, counts(c * 10));
    w.commit();
    w.update_run(run, counts(9999));  // not committed: readers must not see it
    for (const bool meta : {true, false}) {
      Store r = Store::open(path, {.read_only = true, .metadata_only = meta});
      EXPECT_TRUE(r.problems().empty());
      const RunInfo info = only_run(r);
      ASSERT_TRUE(info.counts.has_value()) << "commit " << c;
      EXPECT_EQ(*info.counts, counts(c * 10)) << "commit " << c << (meta ? " metadata" : " full");
    }
  }
  w.update_run(run, counts(70));
  w.end_run(run, RunState::finished, 0);
  w.compact();
  w.close();
  Store r = Store::open(path, {.read_only = true, .metadata_only = true});
  EXPECT_EQ(only_run(r).counts, counts(70));
  EXPECT_EQ(only_run(r).state, RunState::finished);
  ASSERT_EQ(r.jobs().size(), 1u);
  EXPECT_EQ(r.jobs()[0], demo_job());
}

// A metadata reader reads the newest table only: every table holds every
// job and run as of its writing. Runs and jobs of many segments all show.
TEST(StoreRuns, AMetadataReaderOfManySegmentsSeesEveryRunAndJob) {
  TempDir dir;
  const auto path = dir / "s.h5";
  for (std::int64_t v = 1; v <= 4; ++v) {
    Store w = Store::open(path, {.segment_records = 5});
    w.define_job(demo_job(v));
    const std::int64_t run = w.begin_run(RunInfo{.command_line = "v" + std::to_string(v)});
    std::vector<Record> batch;
    for (std::uint64_t i = 0; i < 12; ++i) batch.push_back(demo_record(i, run, v));
    w.append(batch);
    w.update_run(run, counts(v));
    w.end_run(run, RunState::finished, 0);
    w.commit();  // a segment of 12 records for each version
  }
  Store r = Store::open(path, {.read_only = true, .metadata_only = true});
  ASSERT_EQ(r.runs().size(), 4u);
  for (std::int64_t v = 1; v <= 4; ++v) {
    EXPECT_EQ(r.runs()[static_cast<std::size_t>(v - 1)].command_line, "v" + std::to_string(v));
    EXPECT_EQ(r.runs()[static_cast<std::size_t>(v - 1)].counts, counts(v));
    EXPECT_NE(r.find_job("demo", v), nullptr);
  }
  EXPECT_GE(test_support::tables(path).size(), 4u);
}

TEST(StoreRuns, AMetadataReaderRefusesRecordCallsAndWriting) {
  TempDir dir;
  const auto path = dir / "s.h5";
  {
    Store w = Store::open(path);
    w.define_job(demo_job());
    w.append(std::vector<Record>{demo_record(1, 1)});
    w.commit();
  }
  Store r = Store::open(path, {.read_only = true, .metadata_only = true});
  EXPECT_THROW(r.get(demo_key(1)), UsageError);
  EXPECT_THROW(r.size(), UsageError);
  std::vector<TaskKey> keys{demo_key(1)};
  std::vector<Lookup> out(1);
  EXPECT_THROW(r.lookup(keys, out), UsageError);
  EXPECT_THROW(Store::open(path, {.metadata_only = true}), UsageError);
}

TEST(StoreRuns, RunsOfEarlierStoresHaveNoCounts) {
  TempDir dir;
  const auto path = dir / "s.h5";
  {
    Store w = Store::open(path);
    const std::int64_t run = w.begin_run(RunInfo{.command_line = "old"});
    w.end_run(run, RunState::stopped, 3);
  }
  Store r = Store::open(path, {.read_only = true, .metadata_only = true});
  EXPECT_FALSE(only_run(r).counts.has_value());
  EXPECT_EQ(only_run(r).state, RunState::stopped);
}

}  // namespace
