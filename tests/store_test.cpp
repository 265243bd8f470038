// A store: appends, look-ups, segments, compaction, jobs and erasing.
#include "mpibatch/store.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <map>

#include "mpibatch/error.hpp"
#include "mpibatch/store_dispatch.hpp"
#include "store/table.hpp"
#include "store_support.hpp"

namespace {

using namespace mpibatch::store_support;

class StoreBasics : public StoreTest {};

TEST_F(StoreBasics, CreateAppendCommitReopen) {
  const auto path = dir / "run.h5";
  {
    Store s = Store::open(path);
    s.define_job(demo_job());
    append_range(s, 0, 100);
    s.commit();
  }
  EXPECT_TRUE(Store::exists(path));
  Store r = Store::open(path, {.read_only = true});
  expect_exactly(r, 100);
  ASSERT_EQ(r.jobs().size(), 1u);
  EXPECT_EQ(r.jobs()[0], demo_job());
}

TEST_F(StoreBasics, BatchLookupSeesOkFailedAndMissing) {
  Store s = Store::open(dir / "s.h5");
  s.define_job(demo_job());
  append_range(s, 0, 50);
  std::vector<TaskKey> keys;
  for (std::uint64_t i = 0; i < 60; ++i) keys.push_back(demo_key(i));
  std::vector<Lookup> out(keys.size());
  s.lookup(keys, out);  // before commit: appended records are visible
  for (std::uint64_t i = 0; i < 60; ++i) {
    const Lookup want = i >= 50 ? Lookup::missing : i % 11 == 0 ? Lookup::failed : Lookup::ok;
    EXPECT_EQ(out[i], want) << i;
  }
  std::vector<Lookup> wrong(3);
  EXPECT_THROW(s.lookup(keys, wrong), UsageError);
}

TEST_F(StoreBasics, LaterRecordReplacesEarlierAcrossSegmentsAndCompaction) {
  const auto path = dir / "s.h5";
  Record ok = demo_record(11);  // 11 fails in demo_record: make an ok retry of it
  ok.status = Status::ok;
  ok.error.clear();
  ok.values = {std::int64_t{11}, 5.5, false, std::string("retried")};
  {
    Store s = Store::open(path, {.segment_records = 5});
    s.define_job(demo_job());
    append_range(s, 0, 20);
    s.commit();  // a segment holds the failed one
    s.append(std::span(&ok, 1));
    s.commit();
    EXPECT_EQ(s.get(ok.key)->status, Status::ok);
    EXPECT_EQ(s.size(), 20u);
  }
  {
    Store s = Store::open(path, {.read_only = true});
    EXPECT_EQ(*s.get(ok.key), ok);
    EXPECT_EQ(s.size(), 20u);
  }
  Store s = Store::open(path);
  s.compact();
  EXPECT_EQ(*s.get(ok.key), ok);
  EXPECT_EQ(s.size(), 20u);
}

// A writer reads its own records back while segments are flushed under it:
// two job versions share segments, and keys are replaced within a memtable,
// across memtables and across segments (the newest record always wins).
TEST_F(StoreBasics, WriterReadsItsRecordsBackWhileSegmentsAreFlushed) {
  const auto path = dir / "s.h5";
  std::map<TaskKey, Record> want;
  auto replaced = [](std::uint64_t i, std::int64_t version, int round) {
    Record r = demo_record(i, 1, version);
    r.status = Status::ok;
    r.error.clear();
    r.values = {std::int64_t{round}, 0.5 * round, round % 2 == 0, "round " + std::to_string(round)};
    return r;
  };
  auto check = [&](const Store& s) {
    ASSERT_EQ(s.size(), want.size());
    std::vector<TaskKey> keys;
    for (const auto& [k, r] : want) {
      keys.push_back(k);
      const auto got = s.get(k);
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(*got, r);
    }
    std::vector<Lookup> found(keys.size());
    s.lookup(keys, found);
    for (std::size_t i = 0; i < keys.size(); ++i)
      EXPECT_EQ(found[i], want[keys[i]].status == Status::ok ? Lookup::ok : Lookup::failed);
    std::size_t n = 0;
    s.for_each([&](const Record& r) {
      ++n;
      EXPECT_EQ(r, want[r.key]);
    });
    EXPECT_EQ(n, want.size());
  };
  {
    Store s = Store::open(path, {.segment_records = 16});
    s.define_job(demo_job(1));
    s.define_job(demo_job(2));
    for (int round = 0; round < 12; ++round) {
      std::vector<Record> batch;
      for (std::uint64_t i = 0; i < 9; ++i) {
        const std::uint64_t k = static_cast<std::uint64_t>(round) * 9 + i;
        batch.push_back(demo_record(k, 1, 1 + static_cast<std::int64_t>(k % 2)));
      }
      // Replace a key of each earlier round, and one of this batch.
      for (int r = 0; r < round; r += 3)
        batch.push_back(replaced(static_cast<std::uint64_t>(r) * 9 + 4, 1, round));
      batch.push_back(replaced(static_cast<std::uint64_t>(round) * 9 + 1, 2, round));
      for (const auto& r : batch) want[r.key] = r;
      s.append(std::move(batch));
      s.commit();
      check(s);
    }
    s.compact();
    check(s);
  }
  check(Store::open(path, {.read_only = true}));
}

// Logs of the previous format (fixed-width fields) are replayed, and a
// writer goes on in the current format next to them.
TEST_F(StoreBasics, SegmentsCompactionAndOrder) {
  const auto path = dir / "s.h5";
  std::vector<TaskKey> task_order, keys_in_append_order;
  for (std::uint64_t c = 0; c < 10; ++c)  // as appended below
    for (std::uint64_t i = 500 - (c + 1) * 50; i < 500 - c * 50; ++i)
      keys_in_append_order.push_back(demo_key(i));
  {
    Store s = Store::open(path, {.segment_records = 64});
    s.define_job(demo_job());
    const auto run = s.begin_run(RunInfo{.command_line = "test", .ranks = 2, .hosts = {"a", "b"}});
    for (std::uint64_t c = 0; c < 10; ++c) {
      std::vector<TaskKey> keys;
      // Tasks in reverse index order, so task order differs from key order.
      for (std::uint64_t i = 0; i < 50; ++i) keys.push_back(demo_key(499 - c * 50 - i));
      s.append_tasks(run, keys);
      task_order.insert(task_order.end(), keys.begin(), keys.end());
      append_range(s, 500 - (c + 1) * 50, 500 - c * 50, run);
      s.commit();
    }
    s.end_run(run, RunState::finished, 0);
  }
  auto check = [&](const Store& s) {
    expect_exactly(s, 500);
    // for_each goes in the order stored: the order appended.
    std::vector<TaskKey> stored;
    s.for_each([&](const Record& r) { stored.push_back(r.key); });
    EXPECT_EQ(stored, keys_in_append_order);
    std::vector<TaskKey> seen;
    s.for_each_task(1, [&](const TaskKey& k, const Record* r) {
      ASSERT_NE(r, nullptr);
      EXPECT_EQ(r->key, k);
      seen.push_back(k);
    });
    EXPECT_EQ(seen, task_order);
    ASSERT_EQ(s.runs().size(), 1u);
    EXPECT_EQ(s.runs()[0].state, RunState::finished);
    EXPECT_EQ(s.runs()[0].task_count, 500);
    EXPECT_EQ(s.runs()[0].hosts, (std::vector<std::string>{"a", "b"}));
  };
  EXPECT_TRUE(fs::exists(Store::sidecar(path) / "MANIFEST"));
  check(Store::open(path, {.read_only = true}));
  {
    Store s = Store::open(path);
    s.compact();
    check(s);
  }
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(Store::sidecar(path)))
    left.push_back(e.path().filename().string().substr(0, 5));
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"MANIF", "base-"}))
      << "a compacted, closed store is its view, a MANIFEST and one table";
  check(Store::open(path, {.read_only = true}));
}

// A segment holds its rows in the order they were appended (the flush reads
// its memtable front to back); a replaced record is not in it, its
// replacement is, where it was appended. Compaction keeps that order.
TEST_F(StoreBasics, SegmentRowsAreInAppendedOrder) {
  const auto path = dir / "s.h5";
  std::vector<TaskKey> want;
  {
    Store s = Store::open(path);
    s.define_job(demo_job());
    for (std::uint64_t i = 40; i-- > 0;) {
      append_range(s, i, i + 1);
      if (i != 30) want.push_back(demo_key(i));
    }
    append_range(s, 30, 31);  // replaces task 30's record
    want.push_back(demo_key(30));
  }  // closed: the memtable went to a segment
  std::vector<fs::path> segments = test_support::tables(path, true);
  ASSERT_EQ(segments.size(), 1u);
  auto keys_of = [](const fs::path& file) {
    const detail::TableReader t(file);
    std::vector<TaskKey> keys;
    std::vector<std::int8_t> status;
    t.read_index(0, keys, status);
    return keys;
  };
  EXPECT_EQ(keys_of(segments[0]), want);
  Store::open(path).compact();
  EXPECT_EQ(keys_of(test_support::base_table(path)), want);
}

// commit_due() says when the memtable is full (records and task keys both
// count); the commit it asks for writes a segment, and it is false again.
TEST_F(StoreBasics, CommitIsDueWhenTheMemtableIsFull) {
  const auto path = dir / "s.h5";
  Store s = Store::open(path, {.segment_records = 30});
  s.define_job(demo_job());
  const auto run = s.begin_run(RunInfo{.command_line = "test"});
  auto segments = [&] {
    std::size_t n = 0;
    for (const auto& e : fs::directory_iterator(Store::sidecar(path)))
      n += e.path().extension() == ".h5" ? 1 : 0;
    return n;
  };
  s.commit();
  const std::size_t before = segments();
  std::vector<TaskKey> keys;
  for (std::uint64_t i = 0; i < 10; ++i) keys.push_back(demo_key(i));
  s.append_tasks(run, keys);
  append_range(s, 0, 10, run);
  EXPECT_FALSE(dispatch::commit_due(s)) << "20 of 30";
  append_range(s, 10, 20, run);
  EXPECT_TRUE(dispatch::commit_due(s)) << "30 of 30";
  EXPECT_EQ(segments(), before) << "nothing is written before the commit";
  s.commit();
  EXPECT_FALSE(dispatch::commit_due(s));
  s.close();
  EXPECT_EQ(segments(), before + 1);
  EXPECT_FALSE(dispatch::commit_due(Store::open(path, {.read_only = true}))) << "readers never are";
  expect_exactly(Store::open(path, {.read_only = true}), 20);
}

TEST_F(StoreBasics, JobsAndRecordsAreChecked) {
  Store s = Store::open(dir / "s.h5");
  s.define_job(demo_job());
  s.define_job(demo_job());  // identical: fine
  JobInfo changed = demo_job();
  changed.results.back().type = FieldType::int64;
  EXPECT_THROW(s.define_job(changed), UsageError);
  changed.version = 2;
  EXPECT_NO_THROW(s.define_job(changed));
  JobInfo bad = demo_job();
  bad.name = "a/b";
  EXPECT_THROW(s.define_job(bad), UsageError);

  Record r = demo_record(1);
  r.values[1] = std::int64_t{3};  // half must be float64
  EXPECT_THROW(s.append(std::span(&r, 1)), UsageError);
  r = demo_record(1);
  r.job = "nope";
  EXPECT_THROW(s.append(std::span(&r, 1)), UsageError);
  r = demo_record(1);
  r.values.pop_back();
  EXPECT_THROW(s.append(std::span(&r, 1)), UsageError);
  EXPECT_EQ(s.size(), 0u);
}

TEST_F(StoreBasics, NewJobVersionHasNewKeys) {
  Store s = Store::open(dir / "s.h5");
  s.define_job(demo_job(1));
  s.define_job(demo_job(2));
  const Record r1 = demo_record(3, 1, 1);
  s.append(std::span(&r1, 1));
  std::vector<Lookup> out(2);
  const std::vector<TaskKey> keys{demo_key(3, 1), demo_key(3, 2)};
  s.lookup(keys, out);
  EXPECT_EQ(out[0], Lookup::ok);
  EXPECT_EQ(out[1], Lookup::missing);
}

TEST_F(StoreBasics, ReaderSeesCommitsOfALiveWriter) {
  const auto path = dir / "s.h5";
  Store w = Store::open(path, {.segment_records = 25});
  w.define_job(demo_job());
  for (std::uint64_t c = 0; c < 6; ++c) {
    append_range(w, c * 10, c * 10 + 10);
    w.commit();
    append_range(w, 1000 + c, 1001 + c);  // not yet committed: readers must not see it
    Store r = Store::open(path, {.read_only = true});
    EXPECT_TRUE(r.problems().empty());
    EXPECT_EQ(r.size(), (c + 1) * 10 + c);
    EXPECT_FALSE(r.get(demo_key(1000 + c)).has_value());
    if (c > 0) {
      EXPECT_TRUE(r.get(demo_key(999 + c)).has_value());
    }
    w.commit();
  }
}

}  // namespace

namespace {

TEST_F(StoreBasics, EraseIfRemovesOnlyWhatItSaysAndSurvivesReopen) {
  const auto path = dir / "s.h5";
  {
    mpibatch::Store s = mpibatch::Store::open(path, {.segment_records = 30});
    s.define_job(mpibatch::test_support::demo_job());
    std::vector<mpibatch::Record> batch;
    for (std::uint64_t i = 0; i < 100; ++i) batch.push_back(mpibatch::test_support::demo_record(i));
    s.append(std::move(batch));
    s.commit();
    EXPECT_EQ(
        s.erase_if([](const mpibatch::Record& r) { return r.status == mpibatch::Status::failed; }),
        10u);
    EXPECT_EQ(s.size(), 90u);
  }
  mpibatch::Store r = mpibatch::Store::open(path, {.read_only = true});
  EXPECT_TRUE(r.problems().empty());
  EXPECT_EQ(r.size(), 90u);
  for (std::uint64_t i = 0; i < 100; ++i) {
    const auto rec = r.get(mpibatch::test_support::demo_key(i));
    EXPECT_EQ(rec.has_value(), i % 11 != 0) << i;
    if (rec) {
      EXPECT_EQ(*rec, mpibatch::test_support::demo_record(i));
    }
  }
}

}  // namespace
