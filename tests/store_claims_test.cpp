// Columnar batches and claims: what a custom dispatcher adds (store_dispatch.hpp).
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
#include "mpibatch/store.hpp"
#include "mpibatch/store_dispatch.hpp"
#include "store/table.hpp"
#include "store_support.hpp"

namespace {

using namespace mpibatch;
using test_support::demo_job;
using test_support::demo_record;
using namespace mpibatch::store_support;

using test_support::to_batch;

class StoreClaims : public StoreTest {};

TEST_F(StoreClaims, ColumnarBatchIsStoredExactlyAsRecords) {
  std::vector<Record> records;
  for (std::uint64_t i = 0; i < 300; ++i) records.push_back(demo_record(i));
  {
    Store s = Store::open(dir / "s.h5", {.segment_records = 100});
    s.define_job(demo_job());
    dispatch::append(s, to_batch({records.begin(), records.begin() + 150}));
    s.commit();  // the first 100 go to a segment
    dispatch::append(s, to_batch({records.begin() + 150, records.end()}));
    for (const Record& r : records) ASSERT_EQ(s.get(r.key), r) << "in memory";
    s.commit();
  }
  for (int pass = 0; pass < 2; ++pass) {  // replayed from the log, then compacted
    Store s = Store::open(dir / "s.h5");
    EXPECT_EQ(s.size(), records.size());
    for (const Record& r : records) ASSERT_EQ(s.get(r.key), r) << "pass " << pass;
    s.compact();
  }
}

// Claims: a dispatcher looks keys up and claims those to compute in one
// index access; until a claimed key's record is appended it looks as before.
std::vector<TaskKey> keys_of(const std::vector<Record>& records) {
  std::vector<TaskKey> keys;
  for (const Record& r : records) keys.push_back(r.key);
  return keys;
}

TEST_F(StoreClaims, ClaimedKeysLookAsBeforeUntilTheirRecordsAreAppended) {
  Store s = Store::open(dir / "s.h5");
  s.define_job(demo_job());
  s.append(std::vector<Record>{demo_record(1), demo_record(11)});  // 11: failed
  // 2 and 3 are new; 2 again is a duplicate of a key in hand.
  const std::vector<TaskKey> keys{demo_key(1), demo_key(11), demo_key(2), demo_key(3), demo_key(2)};
  std::vector<Lookup> out(keys.size());
  std::vector<dispatch::Claim> ids(keys.size());
  dispatch::claim(s, keys, out, ids, /*claim_failed=*/true);
  EXPECT_EQ(out, (std::vector<Lookup>{Lookup::ok, Lookup::missing, Lookup::missing, Lookup::missing,
                                      Lookup::claimed}));
  std::vector<Lookup> seen(keys.size());
  s.lookup(keys, seen);
  EXPECT_EQ(seen, (std::vector<Lookup>{Lookup::ok, Lookup::failed, Lookup::missing, Lookup::missing,
                                       Lookup::missing}));
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(s.get(demo_key(11)), demo_record(11)) << "the failed record stays until replaced";
  EXPECT_FALSE(s.get(demo_key(2)));
  std::size_t n = 0;
  s.for_each([&](const Record&) { ++n; });
  EXPECT_EQ(n, 2u);

  // Without claim_failed, a failed record is reported and not claimed.
  std::vector<Lookup> out2(1);
  std::vector<dispatch::Claim> ids2(1);
  dispatch::claim(s, std::vector<TaskKey>{demo_key(22)}, out2, ids2, true);  // no record: claimed
  s.append(std::vector<Record>{demo_record(33)});  // failed, as every 11th
  dispatch::claim(s, std::vector<TaskKey>{demo_key(33)}, out2, ids2, false);
  EXPECT_EQ(out2[0], Lookup::failed);

  // The records come back (11 now ok), in an order other than the claims'.
  Record r11 = demo_record(12);
  r11.key = demo_key(11);
  const std::vector<Record> done{demo_record(3), r11, demo_record(2)};
  dispatch::append(s, to_batch(done), std::vector<dispatch::Claim>{ids[3], ids[1], ids[2]});
  s.lookup(keys, seen);
  EXPECT_EQ(seen, std::vector<Lookup>(keys.size(), Lookup::ok));
  EXPECT_EQ(s.size(), 5u);
  for (const Record& r : done) EXPECT_EQ(s.get(r.key), r);
  s.close();
  Store again = Store::open(dir / "s.h5", {.read_only = true});
  EXPECT_EQ(again.size(), 5u) << "the unsettled claim of 22 left nothing behind";
  for (const Record& r : done) EXPECT_EQ(again.get(r.key), r);
}

TEST_F(StoreClaims, ReleasedClaimsLeaveKeysAsTheyWere) {
  Store s = Store::open(dir / "s.h5");
  s.define_job(demo_job());
  s.append(std::vector<Record>{demo_record(11)});  // failed
  const std::vector<TaskKey> keys{demo_key(11), demo_key(5)};
  std::vector<Lookup> out(2);
  std::vector<dispatch::Claim> ids(2);
  dispatch::claim(s, keys, out, ids, true);
  dispatch::release_claims(s);
  EXPECT_EQ(s.size(), 1u);
  EXPECT_EQ(s.get(demo_key(11)), demo_record(11));
  EXPECT_FALSE(s.get(demo_key(5)));
  EXPECT_THROW(
      dispatch::append(s, to_batch({demo_record(5)}), std::vector<dispatch::Claim>{ids[1]}),
      UsageError);
  // Claimed again, and appended with and without a claim.
  dispatch::claim(s, keys, out, ids, true);
  EXPECT_EQ(out, (std::vector<Lookup>{Lookup::missing, Lookup::missing}));
  dispatch::append(s, to_batch({demo_record(5)}), std::vector<dispatch::Claim>{ids[1]});
  dispatch::release_claims(s);
  s.append(std::vector<Record>{demo_record(7)});
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(s.get(demo_key(5)), demo_record(5));
  EXPECT_EQ(s.get(demo_key(11)), demo_record(11));
  s.compact();
  EXPECT_EQ(s.size(), 3u);
}

TEST_F(StoreClaims, AppendWithWrongClaimsIsRefusedWhole) {
  Store s = Store::open(dir / "s.h5");
  s.define_job(demo_job());
  const std::vector<TaskKey> keys{demo_key(1), demo_key(2)};
  std::vector<Lookup> out(2);
  std::vector<dispatch::Claim> ids(2);
  dispatch::claim(s, keys, out, ids, true);
  const RecordBatch both = to_batch({demo_record(1), demo_record(2)});
  auto refused = [&](const std::vector<dispatch::Claim>& claims, const std::string& says) {
    try {
      dispatch::append(s, both, claims);
      ADD_FAILURE() << "accepted claims that should say: " << says;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  refused({ids[0]}, "1 claims for 2 records");
  refused({ids[1], ids[0]}, "not an outstanding claim of its key");
  refused({ids[0], ids[0]}, "record 1 names claim");
  refused({ids[0], 99}, "record 1 names claim 99");
  EXPECT_EQ(s.size(), 0u);
  dispatch::append(s, both, ids);  // the claims are still good
  EXPECT_EQ(s.get(demo_key(2)), demo_record(2));
  refused(ids, "not an outstanding claim");  // settled already
}

// Slots move when the index grows: claims made before still settle the
// right keys, and a record appended without its claim is replaced by the
// claimed one.
TEST_F(StoreClaims, ClaimsSurviveTheIndexGrowingAndPlainAppends) {
  Store s = Store::open(dir / "s.h5", {.segment_records = 5000});
  s.define_job(demo_job());
  const std::size_t n = 12000;  // well past the room reserved at open (5,000)
  std::vector<Record> records;
  for (std::uint64_t i = 0; i < n; ++i) records.push_back(demo_record(i));
  std::vector<Lookup> out(n);
  std::vector<dispatch::Claim> ids(n);
  dispatch::claim(s, keys_of({records.begin(), records.begin() + n / 2}), {out.data(), n / 2},
                  {ids.data(), n / 2}, true);
  // Plain appends grow the index while the first half is claimed; one of
  // them is a claimed key's.
  Record early = demo_record(n + 1);
  early.key = records[7].key;
  std::vector<Record> plain(records.begin() + n / 2, records.end());
  plain.push_back(early);
  s.append(plain);
  std::vector<Lookup> again(10);
  std::vector<dispatch::Claim> more(10);
  dispatch::claim(s, keys_of({records.begin(), records.begin() + 10}), again, more, true);
  EXPECT_EQ(again, std::vector<Lookup>(10, Lookup::claimed));
  for (std::size_t at = 0; at < n / 2; at += 1000) {
    std::vector<Record> part(records.begin() + at, records.begin() + at + 1000);
    dispatch::append(s, to_batch(part), {ids.data() + at, 1000});
    s.commit();  // segments are written meanwhile
  }
  EXPECT_EQ(s.size(), n);
  for (const Record& r : records) ASSERT_EQ(s.get(r.key), r);
}

TEST_F(StoreClaims, ColumnarBatchIsCheckedWhole) {
  Store s = Store::open(dir / "s.h5");
  s.define_job(demo_job());
  const RecordBatch good = to_batch({demo_record(1), demo_record(2)});
  auto rejected = [&](RecordBatch b, const std::string& says) {
    try {
      dispatch::append(s, b);
      ADD_FAILURE() << "accepted a batch that should say: " << says;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  RecordBatch b = good;
  b.rank.pop_back();
  rejected(b, "column rank has 1 rows, the keys 2");
  b = good;
  b.values[1] = std::vector<std::int64_t>{1, 2};
  rejected(b, "result field 'half' has a column of the wrong type");
  b = good;
  std::get<3>(b.values[3]).pop_back();
  rejected(b, "column label has 1 rows");
  b = good;
  b.params.clear();
  rejected(b, "0 param columns; the job defines 1");
  b = good;
  b.result_sizes[0] += 1;
  rejected(b, "result or error sizes do not add up");
  b = good;
  b.job = "nope";
  EXPECT_THROW(dispatch::append(s, b), UsageError);
  EXPECT_EQ(s.size(), 0u);
  dispatch::append(s, good);
  EXPECT_EQ(s.size(), 2u);
}

}  // namespace
