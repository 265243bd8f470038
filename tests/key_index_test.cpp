// Each table's key index (store/key_index): written with the table, mapped
// on open, rebuilt from the key columns when missing or damaged; and a
// store whose pre-existing tables are looked up through it, not loaded.
#include "store/key_index.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <random>
#include <set>

#include "damage_support.hpp"
#include "mpibatch/store.hpp"
#include "mpibatch/store_dispatch.hpp"
#include "store/schema.hpp"
#include "store/table.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace mpibatch;
using mpibatch::test_support::demo_job;
using mpibatch::test_support::demo_key;
using mpibatch::test_support::demo_record;
using mpibatch::test_support::TempDir;

// A table of two job versions: n1 rows of version 1, then n2 of version 2
// (appended in two batches each, interleaved), every 11th failed.
fs::path write_table(const fs::path& dir, std::uint64_t n1, std::uint64_t n2,
                     std::vector<TaskKey> replacing = {}, int deflate = 0) {
  const fs::path path = dir / "t.h5";
  detail::TableWriter w(dir / "t.h5.tmp", 1, deflate);
  w.add_jobs({demo_job(1), demo_job(2)});
  auto batch = [&](std::int64_t version, std::uint64_t from, std::uint64_t to) {
    std::vector<Record> recs;
    for (std::uint64_t i = from; i < to; ++i) recs.push_back(demo_record(i, 1, version));
    std::vector<const Record*> ptrs;
    for (const auto& r : recs) ptrs.push_back(&r);
    w.append("demo", version, ptrs);
  };
  batch(2, 0, n2 / 2);
  batch(1, 0, n1 / 2);
  batch(2, n2 / 2, n2);
  batch(1, n1 / 2, n1);
  w.set_replacing(std::move(replacing));
  w.finish(path);
  return path;
}

std::size_t group_of(const detail::TableReader& t, std::int64_t version) {
  for (std::size_t g = 0; g < t.groups().size(); ++g)
    if (t.groups()[g].job.version == version) return g;
  ADD_FAILURE() << "no group of version " << version;
  return 0;
}

void expect_finds_every_key(const detail::TableReader& t, std::uint64_t n1, std::uint64_t n2) {
  const detail::KeyIndex& x = t.key_index();
  ASSERT_EQ(x.size(), n1 + n2);
  for (std::int64_t version : {1, 2}) {
    const std::uint64_t n = version == 1 ? n1 : n2;
    for (std::uint64_t i = 0; i < n; ++i) {
      const auto hit = x.find(demo_key(i, version));
      ASSERT_TRUE(hit.has_value()) << "v" << version << " key " << i;
      EXPECT_EQ(hit->group, group_of(t, version));
      EXPECT_EQ(hit->row, i);
      EXPECT_EQ(hit->failed, i % 11 == 0);
    }
  }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 10000; ++i) EXPECT_FALSE(x.find(TaskKey{rng(), rng()}).has_value());
  EXPECT_FALSE(x.find(demo_key(n1, 1)).has_value());
}

void delete_link(const fs::path& file, const char* link) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  ASSERT_GE(H5Ldelete(f, link, H5P_DEFAULT), 0);
  ASSERT_GE(H5Fclose(f), 0);
}

// Compressed or not: an uncompressed table's index reads the keys from its
// key columns (tagged), a compressed one's keeps a sorted copy.
TEST(KeyIndex, ATableIndexesEveryKeyWhereItIsStoredAndIsMapped) {
  TempDir dir;
  for (const int deflate : {0, 4})
    for (const auto& [n1, n2] :
         {std::pair<std::uint64_t, std::uint64_t>{0, 0}, {1, 0}, {7, 3}, {5000, 20000}}) {
      const TaskKey replaced = demo_key(99999);
      const auto path = write_table(dir.path(), n1, n2, {replaced}, deflate);
      detail::TableReader t(path);
      expect_finds_every_key(t, n1, n2);
      EXPECT_TRUE(t.check_index().empty()) << t.check_index().front();
      EXPECT_TRUE(t.key_index().in_file());
      EXPECT_EQ(t.key_index().tagged(), deflate == 0);
      EXPECT_EQ(t.key_index().mapped(), n1 + n2 > 0);
      EXPECT_EQ(t.key_index().replacing(), std::vector<TaskKey>{replaced});
      const auto keys = t.key_index().keys();
      EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
    }
}

// The uncompressed layout: no copy of the keys in /index, the key columns
// contiguous; a key damaged in its column is not found, and check says where.
// (Like every column's values, a key that stays in its place in the
// order, tag and bucket would not be seen: tables carry no checksums.)
TEST(KeyIndex, AnUncompressedTableKeepsItsKeysOnlyInItsKeyColumns) {
  TempDir dir;
  const auto path = write_table(dir.path(), 3000, 1000);
  {
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    EXPECT_EQ(H5Lexists(f, "/index/keys", H5P_DEFAULT), 0);
    EXPECT_GT(H5Lexists(f, "/index/tags", H5P_DEFAULT), 0);
    const hid_t ds = H5Dopen2(f, "/jobs/demo/v1/key", H5P_DEFAULT);
    ASSERT_GE(ds, 0);
    const hid_t dcpl = H5Dget_create_plist(ds);
    EXPECT_EQ(H5Pget_layout(dcpl), H5D_CONTIGUOUS);
    H5Pclose(dcpl);
    // Row 5's key becomes another's.
    const hid_t type = H5Dget_type(ds);
    std::vector<TaskKey> keys(3000);
    ASSERT_GE(H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, keys.data()), 0);
    EXPECT_EQ(keys[5], demo_key(5));
    keys[5].hi ^= std::uint64_t{1} << 63;
    ASSERT_GE(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, keys.data()), 0);
    H5Tclose(type);
    H5Dclose(ds);
    H5Fclose(f);
  }
  {  // as written the change fails its block's sum
    detail::TableReader t(path);
    EXPECT_THROW(t.key_index().find(demo_key(5)), StoreCorruptError);
    EXPECT_NE(t.check_index().front().find("/jobs/demo/v1/key: rows 0 to 2999 are damaged"),
              std::string::npos)
        << t.check_index().front();
  }
  // With sums that match (a writer's mistake, not damage): the checks behind them.
  damage_support::resum_index(path);
  detail::TableReader t(path);
  EXPECT_TRUE(t.key_index().tagged());
  EXPECT_TRUE(t.key_index().mapped());
  EXPECT_FALSE(t.key_index().find(demo_key(5)).has_value());
  EXPECT_TRUE(t.key_index().find(demo_key(6)).has_value());
  const auto problems = t.check_index();
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems.front().find("is not indexed where it is stored"), std::string::npos)
      << problems.front();
  EXPECT_NE(t.key_index().check().find("out of order"), std::string::npos) << t.key_index().check();
}

TEST(KeyIndex, ATableWithoutOneIsIndexedFromItsKeyColumns) {
  TempDir dir;
  const auto path = write_table(dir.path(), 3000, 1000);
  delete_link(path, "/index");
  detail::TableReader t(path);
  expect_finds_every_key(t, 3000, 1000);
  EXPECT_TRUE(t.check_index().empty()) << t.check_index().front();
  EXPECT_FALSE(t.key_index().in_file());
  EXPECT_TRUE(t.key_index().replacing().empty());
}

TEST(KeyIndex, ADamagedIndexIsNotUsedAndIsReported) {
  TempDir dir;
  const auto path = write_table(dir.path(), 3000, 1000);
  {  // bucket starts that end short of the keys
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hid_t ds = H5Dopen2(f, "/index/buckets", H5P_DEFAULT);
    ASSERT_GE(ds, 0);
    const hssize_t n = H5Sget_simple_extent_npoints(H5Dget_space(ds));
    std::vector<std::uint32_t> b(static_cast<std::size_t>(n));
    ASSERT_GE(H5Dread(ds, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, b.data()), 0);
    b.back() = 17;
    ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, b.data()), 0);
    H5Dclose(ds);
    H5Fclose(f);
  }
  {  // as written: its sums fail, the index is not used
    detail::TableReader t(path);
    expect_finds_every_key(t, 3000, 1000);
    EXPECT_NE(t.check_index().front().find("/index/buckets: rows 0 to 128 are damaged"),
              std::string::npos);
  }
  damage_support::resum_index(path);
  detail::TableReader t(path);
  expect_finds_every_key(t, 3000, 1000);  // from the key columns
  EXPECT_FALSE(t.key_index().in_file());
  const auto problems = t.check_index();
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems.front().find("bucket starts"), std::string::npos) << problems.front();
}

TEST(KeyIndex, AKeyIndexedInTheWrongRowIsFoundByCheck) {
  TempDir dir;
  const auto path = write_table(dir.path(), 100, 0);
  {  // swap two rows' numbers
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t ds = H5Dopen2(f, "/index/rows", H5P_DEFAULT);
    std::vector<std::uint32_t> rows(100);
    ASSERT_GE(H5Dread(ds, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows.data()), 0);
    std::swap(rows[3], rows[4]);
    ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows.data()), 0);
    H5Dclose(ds);
    H5Fclose(f);
  }
  damage_support::resum_index(path);  // consistent, wrong: what check() is for
  detail::TableReader t(path);
  const auto problems = t.check_index();
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems.front().find("not indexed where it is stored"), std::string::npos);
}

Record retried(std::uint64_t i, const std::string& label) {
  Record r = demo_record(i);
  r.status = Status::ok;
  r.error.clear();
  r.values = {static_cast<std::int64_t>(i), 0.5, true, label};
  return r;
}

// 100 records in three tables: 11 replaced twice, 22 once.
void make_replaced_store(const fs::path& path) {
  {
    Store s = Store::open(path);
    s.define_job(demo_job());
    std::vector<Record> batch;
    for (std::uint64_t i = 0; i < 100; ++i) batch.push_back(demo_record(i));
    s.append(batch);
  }
  for (const char* label : {"second", "third"}) {  // 11 is replaced twice, 22 once
    Store s = Store::open(path);
    std::vector<Record> batch{retried(11, label)};
    if (std::string(label) == "second") batch.push_back(retried(22, label));
    s.append(batch);
    EXPECT_EQ(s.size(), 100u);
  }
}

void check_replaced_store(const Store& s, std::size_t size = 100) {
  EXPECT_EQ(s.size(), size);
  EXPECT_EQ(std::get<std::string>(s.get(demo_key(11))->values[3]), "third");
  EXPECT_EQ(std::get<std::string>(s.get(demo_key(22))->values[3]), "second");
  std::multiset<TaskKey> seen;
  s.for_each([&](const Record& r) { seen.insert(r.key); });
  EXPECT_EQ(seen.size(), size);
  EXPECT_EQ(seen.count(demo_key(11)), 1u);
  std::vector<Lookup> out(3);
  const std::vector<TaskKey> keys{demo_key(11), demo_key(44), demo_key(100)};
  s.lookup(keys, out);
  EXPECT_EQ(out, (std::vector<Lookup>{Lookup::ok, Lookup::failed, Lookup::missing}));
}

// Records replaced across tables that were there at open (stopped runs
// never merge): counted and read once, the newest winning, until a
// finished run merges the replaced rows away.
TEST(KeyIndex, ReplacedRecordsInTablesOfEarlierOpensCountOnce) {
  TempDir dir;
  const auto path = dir / "s.h5";
  make_replaced_store(path);
  const auto check = [](const Store& s) { check_replaced_store(s); };
  check(Store::open(path, {.read_only = true}));
  {
    Store s = Store::open(path);
    check(s);
    // A claim of a failed record in an old table, computed again.
    std::vector<Lookup> out(1);
    std::vector<dispatch::Claim> ids(1);
    const TaskKey k = demo_key(33);
    dispatch::claim(s, {&k, 1}, out, ids, true);
    ASSERT_EQ(out[0], Lookup::missing);
    EXPECT_EQ(s.size(), 100u);
    dispatch::append(s, test_support::to_batch({retried(33, "claimed")}), ids);
    EXPECT_EQ(s.size(), 100u);
    s.close_merging();
  }
  Store s = Store::open(path, {.read_only = true});
  check(s);
  EXPECT_EQ(std::get<std::string>(s.get(demo_key(33))->values[3]), "claimed");
  std::uint64_t rows = 0;
  for (const auto& t : test_support::tables(path)) {
    detail::TableReader tr(t);
    for (const auto& g : tr.groups()) rows += g.rows;
  }
  EXPECT_EQ(rows, 100u) << "a finished run leaves one row a key";
  EXPECT_TRUE(s.check_files().empty());
}

// Many look-ups of keys no table holds make the writer load the tables'
// keys into its own index (one load instead of a probe per table each): the
// newest record still wins, and claims made before stay good.
TEST(KeyIndex, AWriterLoadsTheTablesKeysAfterManyMissesAndClaimsStayGood) {
  TempDir dir;
  const auto path = dir / "s.h5";
  make_replaced_store(path);
  Store s = Store::open(path);
  auto claim_new = [&](std::uint64_t from, std::uint64_t n) {
    std::vector<TaskKey> keys;
    for (std::uint64_t i = from; i < from + n; ++i) keys.push_back(demo_key(i));
    std::vector<Lookup> out(n);
    std::vector<dispatch::Claim> ids(n);
    dispatch::claim(s, keys, out, ids, true);
    EXPECT_EQ(out, std::vector<Lookup>(n, Lookup::missing));
    return ids;
  };
  const auto first = claim_new(1000, 200);    // 200 keys x 3 tables: more misses than rows
  const auto second = claim_new(2000, 5000);  // loads the tables, then grows the index
  std::vector<Record> done;
  for (std::uint64_t i = 1000; i < 1200; ++i) done.push_back(demo_record(i));
  dispatch::append(s, test_support::to_batch(done), first);
  EXPECT_EQ(s.size(), 300u);
  check_replaced_store(s, 300);  // 11 and 22 still read their newest records
  std::vector<Lookup> out(2);
  const std::vector<TaskKey> keys{demo_key(1101), demo_key(2101)};
  s.lookup(keys, out);
  EXPECT_EQ(out, (std::vector<Lookup>{Lookup::ok, Lookup::missing}));
  // The failed record of 44 is claimed again, as before the load.
  std::vector<Lookup> again(1);
  std::vector<dispatch::Claim> id(1);
  const TaskKey k44 = demo_key(44);  // NOLINT: a name for the span
  dispatch::claim(s, {&k44, 1}, again, id, true);
  EXPECT_EQ(again[0], Lookup::missing);
  dispatch::release_claims(s);
  s.close();
  Store r = Store::open(path, {.read_only = true});
  EXPECT_EQ(r.size(), 300u);
  EXPECT_EQ(*r.get(demo_key(1150)), demo_record(1150));
}

// Tables written before they carried a key index: indexed from their key
// columns at open, and their replaced rows found by looking their keys up.
TEST(KeyIndex, TablesWithoutAnIndexStillCountReplacedRecordsOnce) {
  TempDir dir;
  const auto path = dir / "s.h5";
  make_replaced_store(path);
  for (const auto& t : test_support::tables(path)) delete_link(t, "/index");
  damage_support::restamp(path);  // tables as an older build wrote them
  check_replaced_store(Store::open(path, {.read_only = true}));
  {
    Store s = Store::open(path);
    check_replaced_store(s);
    s.close_merging();
  }
  Store s = Store::open(path, {.read_only = true});
  check_replaced_store(s);
  EXPECT_TRUE(s.check_files().empty());
}

}  // namespace
