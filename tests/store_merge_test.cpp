// Format 2: the store's file is a view over tables; runs merge tables by
// size (close_merging), never rewriting the whole store for a small run.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/stat.h>

#include <fstream>

#include "mpibatch/error.hpp"
#include "mpibatch/store.hpp"
#include "store/table.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace mpibatch;
using mpibatch::test_support::demo_job;
using mpibatch::test_support::demo_key;
using mpibatch::test_support::demo_record;
using mpibatch::test_support::TempDir;

ino_t inode(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_ino;
}

// Bytes this process has written with write(2) and friends (HDF5's too).
std::uint64_t bytes_written() {
  std::ifstream io("/proc/self/io");
  std::string name;
  std::uint64_t value = 0;
  while (io >> name >> value)
    if (name == "wchar:") return value;
  return 0;
}

std::uint64_t store_bytes(const fs::path& store) {
  std::uint64_t n = 0;
  for (const auto& t : test_support::tables(store)) n += fs::file_size(t);
  return n;
}

// One run: n new records from `from`, then the finished run's cleanup.
void small_run(const fs::path& path, std::uint64_t from, std::uint64_t n) {
  Store s = Store::open(path);
  s.define_job(demo_job());
  std::vector<Record> batch;
  for (std::uint64_t i = from; i < from + n; ++i) batch.push_back(demo_record(i));
  s.append(batch);
  s.commit();
  s.close_merging();
}

TEST(StoreFormat, AStoreOfFormatOneMovesToTheViewByAHardLink) {
  TempDir dir;
  fs::copy(fs::path(TEST_DATA_DIR) / "log_format_1", dir.path(), fs::copy_options::recursive);
  const auto path = dir / "store.h5";
  const ino_t old = inode(path);
  EXPECT_TRUE(Store::exists(path));
  { Store r = Store::open(path, {.read_only = true}); }  // a reader changes nothing
  EXPECT_EQ(inode(path), old);
  { Store w = Store::open(path); }
  EXPECT_EQ(inode(test_support::base_table(path)), old)
      << "the old file is the base table, not a copy";
  EXPECT_NE(inode(path), old) << "the store's file is now its view";
  std::string manifest;
  std::getline(std::ifstream(Store::sidecar(path) / "MANIFEST"), manifest);
  EXPECT_EQ(manifest, "mpibatch-manifest " + std::to_string(kStoreFormat));
  EXPECT_TRUE(Store::exists(path));
  Store r = Store::open(path, {.read_only = true});
  EXPECT_TRUE(r.problems().empty());
  EXPECT_EQ(r.size(), 30u);
  EXPECT_EQ(*r.get(demo_key(7)), test_support::fixture_record(7, 1));
}

TEST(StoreFormat, AViewWithoutItsTablesIsNamedNotReadAsData) {
  TempDir dir;
  const auto path = dir / "s.h5";
  small_run(path, 0, 10);
  fs::remove_all(Store::sidecar(path));
  EXPECT_FALSE(Store::exists(path));
  try {
    Store::open(path, {.read_only = true});
    ADD_FAILURE() << "opened a view without its tables";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("s.h5.d"), std::string::npos) << e.what();
  }
}

std::uint64_t table_rows(const fs::path& store) {
  std::uint64_t n = 0;
  for (const auto& t : test_support::tables(store)) {
    const detail::TableReader r(t);
    for (const auto& g : r.groups()) n += g.rows;
  }
  return n;
}

// A failed task retried by a later run: after that run, the tables (and so
// the view) hold one row for the key, the newer.
TEST(StoreMerge, AReplacedRecordLeavesTheTablesAtTheEndOfARun) {
  TempDir dir;
  const auto path = dir / "s.h5";
  small_run(path, 0, 1000);  // records 0, 11, 22, ... failed
  small_run(path, 1000, 10);
  ASSERT_EQ(table_rows(path), 1010u);
  Store s = Store::open(path);
  Record retried = demo_record(11);
  retried.status = Status::ok;
  retried.error.clear();
  retried.values = {std::int64_t{11}, 5.5, false, std::string("n11")};
  retried.result = "r";
  s.append(std::vector<Record>{retried});
  s.close_merging();
  EXPECT_THROW(s.get(demo_key(11)), UsageError) << "the index is stale after merging";
  EXPECT_EQ(table_rows(path), 1010u) << "one row a key";
  Store r = Store::open(path, {.read_only = true});
  EXPECT_EQ(*r.get(demo_key(11)), retried);
  EXPECT_EQ(r.size(), 1010u);
  const auto view = r.check_files();
  EXPECT_TRUE(view.empty()) << view.front().what;
}

// An empty base that holds task lists (every record cleared) is not
// replaced by promotion: the runs' task lists stay.
TEST(StoreMerge, AnEmptyBaseWithTaskListsKeepsThem) {
  TempDir dir;
  const auto path = dir / "s.h5";
  {
    Store s = Store::open(path);
    s.define_job(demo_job());
    const auto run = s.begin_run(RunInfo{});
    std::vector<TaskKey> keys{demo_key(1), demo_key(2)};
    s.append_tasks(run, keys);
    s.append(std::vector<Record>{demo_record(1, run), demo_record(2, run)});
    s.end_run(run, RunState::finished, 0);
    s.erase_if([](const Record&) { return true; });
  }
  small_run(path, 100, 10);
  Store r = Store::open(path, {.read_only = true});
  std::size_t tasks = 0;
  r.for_each_task(1, [&](const TaskKey&, const Record* rec) {
    EXPECT_EQ(rec, nullptr);
    ++tasks;
  });
  EXPECT_EQ(tasks, 2u);
}

TEST(StoreFormat, AStoreNamedWithPercentSignsHasAWorkingView) {
  TempDir dir;
  const auto path = dir / "run_50%d%%.h5";
  small_run(path, 0, 10);
  small_run(path, 10, 10);
  EXPECT_TRUE(Store::exists(path));
  Store r = Store::open(path, {.read_only = true});
  const auto view = r.check_files();
  EXPECT_TRUE(view.empty()) << view.front().what;
  EXPECT_EQ(r.size(), 20u);
}

// Result bytes (archives of C++ API jobs) have columns only in groups whose
// records carry some; the command's jobs keep results as columns only.
TEST(StoreFormat, ResultByteColumnsOnlyWhereRecordsHaveResultBytes) {
  TempDir dir;
  const auto path = dir / "s.h5";
  std::vector<Record> records;
  for (std::uint64_t i = 0; i < 20; ++i) {
    records.push_back(demo_record(i));
    if (i < 7) records.back().result.clear();  // none before the first with bytes
  }
  {
    Store s = Store::open(path);
    s.define_job(demo_job());
    s.append(std::vector<Record>(records.begin(), records.begin() + 7));
    s.commit();
    s.close();  // a segment of records without result bytes
  }
  const fs::path first = test_support::tables(path, true).back();
  const hid_t f = H5Fopen(first.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  EXPECT_EQ(H5Lexists(f, "jobs/demo/v1/result_size", H5P_DEFAULT), 0);
  EXPECT_GT(H5Lexists(f, "jobs/demo/v1/key", H5P_DEFAULT), 0);
  H5Fclose(f);
  {
    Store s = Store::open(path);
    s.append(std::vector<Record>(records.begin() + 7, records.end()));
    s.compact();  // one table: rows without result bytes, then rows with
  }
  Store r = Store::open(path, {.read_only = true});
  for (std::uint64_t i = 0; i < 20; ++i) EXPECT_EQ(*r.get(demo_key(i)), records[i]) << i;
}

// 10 new records against a store of 200,000 cost a segment and a view: the
// base table is neither rewritten nor replaced.
TEST(StoreMerge, ASmallRunAddsASegmentAndLeavesTheBaseAsItIs) {
  TempDir dir;
  const auto path = dir / "s.h5";
  small_run(path, 0, 200000);
  const fs::path base = test_support::base_table(path);
  ASSERT_FALSE(base.empty());
  const ino_t base_inode = inode(base);
  const std::uint64_t before = bytes_written();
  small_run(path, 200000, 10);
  EXPECT_LT(bytes_written() - before, fs::file_size(base) / 10) << "the run rewrote the store";
  EXPECT_EQ(test_support::base_table(path), base);
  EXPECT_EQ(inode(base), base_inode);
  EXPECT_EQ(test_support::tables(path).size(), 2u);
  Store r = Store::open(path, {.read_only = true});
  EXPECT_EQ(r.size(), 200010u);
  EXPECT_EQ(*r.get(demo_key(200005)), demo_record(200005));
}

// 100 runs of 2,000 records: bytes written stay a small multiple of the
// store's size, and the number of tables stays small.
TEST(StoreMerge, ManySmallRunsKeepWritesAndTablesBounded) {
  TempDir dir;
  const auto path = dir / "s.h5";
  const std::uint64_t before = bytes_written();
  constexpr std::uint64_t kRuns = 100, kPerRun = 2000;
  std::size_t most_tables = 0;
  for (std::uint64_t run = 0; run < kRuns; ++run) {
    small_run(path, run * kPerRun, kPerRun);
    most_tables = std::max(most_tables, test_support::tables(path).size());
  }
  const double amplification =
      static_cast<double>(bytes_written() - before) / static_cast<double>(store_bytes(path));
  std::printf("write amplification %.2f, at most %zu tables\n", amplification, most_tables);
  EXPECT_LT(amplification, 12.0);
  EXPECT_LE(most_tables, 25u);
  Store r = Store::open(path, {.read_only = true});
  EXPECT_TRUE(r.problems().empty());
  ASSERT_EQ(r.size(), kRuns * kPerRun);
  for (std::uint64_t i = 0; i < kRuns * kPerRun; i += 997)
    EXPECT_EQ(*r.get(demo_key(i)), demo_record(i));
}

// A merge keeps the latest record of a key, and the task lists of runs.
TEST(StoreMerge, MergedSegmentsKeepTheLatestRecordAndTaskLists) {
  TempDir dir;
  const auto path = dir / "s.h5";
  small_run(path, 0, 100000);  // the base
  constexpr std::uint64_t kRuns = 30;
  for (std::uint64_t r = 0; r < kRuns; ++r) {
    Store s = Store::open(path);
    s.define_job(demo_job());
    const auto run = s.begin_run(RunInfo{});
    std::vector<TaskKey> keys{demo_key(r), demo_key(100000 + r)};
    s.append_tasks(run, keys);
    s.append(std::vector<Record>{demo_record(r, run), demo_record(100000 + r, run)});
    s.end_run(run, RunState::finished, 0);
    s.close_merging();
  }
  EXPECT_LE(test_support::tables(path).size(), 25u) << "small segments were merged";
  Store s = Store::open(path, {.read_only = true});
  EXPECT_EQ(s.size(), 100000u + kRuns);
  for (std::uint64_t r = 0; r < kRuns; ++r) {
    EXPECT_EQ(s.get(demo_key(r))->run, static_cast<std::int64_t>(r + 1)) << "the later record";
    std::vector<TaskKey> seen;
    s.for_each_task(static_cast<std::int64_t>(r + 1), [&](const TaskKey& k, const Record* rec) {
      EXPECT_NE(rec, nullptr);
      seen.push_back(k);
    });
    EXPECT_EQ(seen, (std::vector<TaskKey>{demo_key(r), demo_key(100000 + r)}));
  }
}

}  // namespace

namespace {

// Bytes of a column's type in each of the store's tables holding job demo v1.
std::vector<std::size_t> column_widths(const fs::path& store, const char* column) {
  std::vector<std::size_t> out;
  for (const auto& t : mpibatch::test_support::tables(store)) {
    const hid_t f = H5Fopen(t.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT_GE(f, 0) << t;
    const std::string path = std::string("/jobs/demo/v1/") + column;
    if (H5Lexists(f, "/jobs/demo", H5P_DEFAULT) > 0 &&
        H5Lexists(f, path.c_str(), H5P_DEFAULT) > 0) {
      const hid_t ds = H5Dopen2(f, path.c_str(), H5P_DEFAULT);
      const hid_t type = H5Dget_type(ds);
      if (H5Sget_simple_extent_npoints(H5Dget_space(ds)) > 0) out.push_back(H5Tget_size(type));
      H5Tclose(type);
      H5Dclose(ds);
    }
    H5Fclose(f);
  }
  return out;
}

// Rank and run columns take 16 bits where every value fits; a table with a
// rank that does not gets 32, and so does a merge it is part of. Values
// read back exactly either way.
TEST(StoreFormat, RankAndRunColumnsAreNarrowWhereTheirValuesFit) {
  TempDir dir;
  const auto path = dir / "s.h5";
  {
    Store s = Store::open(path);
    s.define_job(demo_job());
    std::vector<Record> batch;
    for (std::uint64_t i = 0; i < 100; ++i) batch.push_back(demo_record(i, 7));
    s.append(batch);
  }
  EXPECT_EQ(column_widths(path, "rank"), std::vector<std::size_t>{2});
  EXPECT_EQ(column_widths(path, "run"), std::vector<std::size_t>{2});
  EXPECT_EQ(column_widths(path, "duration"), std::vector<std::size_t>{4});
  Record wide = demo_record(100, 40000);
  wide.rank = 70000;
  {
    Store s = Store::open(path);
    s.append({wide});
  }
  auto sorted = [](std::vector<std::size_t> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(sorted(column_widths(path, "rank")), (std::vector<std::size_t>{2, 4}));
  EXPECT_EQ(sorted(column_widths(path, "run")), (std::vector<std::size_t>{2, 4}));
  {
    Store s = Store::open(path);
    EXPECT_EQ(*s.get(demo_key(100)), wide);
    EXPECT_EQ(*s.get(demo_key(7)), demo_record(7, 7));
    s.compact();
    EXPECT_EQ(*s.get(demo_key(100)), wide);
    EXPECT_EQ(*s.get(demo_key(7)), demo_record(7, 7));
  }
  EXPECT_EQ(column_widths(path, "rank"), std::vector<std::size_t>{4});
  EXPECT_EQ(column_widths(path, "run"), std::vector<std::size_t>{4});
  const Store r = Store::open(path, {.read_only = true});
  EXPECT_EQ(*r.get(demo_key(100)), wide);
  EXPECT_EQ(r.size(), 101u);
}

}  // namespace
