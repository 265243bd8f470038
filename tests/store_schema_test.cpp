// A job's definition in a store widens: params are descriptive columns, so
// a run may add some (exec's placeholders) without a new job version.
#include <gtest/gtest.h>

#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "mpibatch/error.hpp"
#include "mpibatch/store.hpp"
#include "store_support.hpp"

namespace {

using namespace mpibatch::store_support;

class StoreSchema : public StoreTest {};

JobInfo wide_job() {
  JobInfo j = demo_job();
  j.params.push_back(Field{"tag", FieldType::string, "", "a label"});
  return j;
}

Record tagged(std::uint64_t i) {
  Record r = demo_record(i);
  r.params.emplace_back(std::in_place_type<std::string>, "t" + std::to_string(i));
  return r;
}

TEST_F(StoreSchema, ParamsWidenAcrossTablesLogsAndCompaction) {
  const fs::path path = dir / "s.h5";
  {  // Rows of the narrow definition, in a table.
    Store s = Store::open(path);
    s.define_job(demo_job());
    append_range(s, 0, 20);
    s.commit();
    s.close_merging();
  }
  in_crashing_child([&] {  // Rows of the wide one, in a log a crash leaves.
    Store s = Store::open(path);
    if (s.define_job(wide_job()).params.size() != 2) throw std::runtime_error("not widened");
    std::vector<Record> rows;
    for (std::uint64_t i = 20; i < 30; ++i) rows.push_back(tagged(i));
    s.append(rows);
    s.commit();
    crash();
  });
  Store s = Store::open(path);  // replays the log, with its widened definition
  EXPECT_TRUE(s.problems().empty());
  ASSERT_NE(s.find_job("demo", 1), nullptr);
  EXPECT_EQ(s.find_job("demo", 1)->params, wide_job().params);
  EXPECT_EQ(s.get(demo_key(25))->params, tagged(25).params);
  EXPECT_EQ(s.get(demo_key(5))->params, demo_record(5).params);  // as its table has it
  // A narrower definition again is fine: the store's stays wide.
  EXPECT_EQ(s.define_job(demo_job()).params.size(), 2u);
  JobInfo clash = wide_job();
  clash.params[1].type = FieldType::int64;
  EXPECT_THROW(s.define_job(clash), UsageError);
  JobInfo other = demo_job();
  other.description = "another";
  EXPECT_THROW(s.define_job(other), UsageError);
  s.compact();  // one table of the wide definition: older rows read "" there
  std::vector<Value> five = demo_record(5).params;
  five.emplace_back(std::in_place_type<std::string>, "");
  EXPECT_EQ(s.get(demo_key(5))->params, five);
  EXPECT_EQ(s.get(demo_key(29))->params, tagged(29).params);
  EXPECT_EQ(s.size(), 30u);
  EXPECT_TRUE(s.check_files().empty());
}

TEST_F(StoreSchema, ResultsWidenTooAndOlderRowsReadNaN) {
  Store s = Store::open(dir / "s.h5");
  s.define_job(demo_job());
  append_range(s, 0, 10);
  s.commit();
  JobInfo more = demo_job();
  more.results.push_back(Field{"score", FieldType::float64, "", "added later"});
  ASSERT_EQ(s.define_job(more).results.size(), 5u);
  Record r = demo_record(12);
  r.values.emplace_back(2.5);
  s.append(std::span(&r, 1));
  s.commit();
  s.compact();
  EXPECT_EQ(std::get<double>(s.get(demo_key(12))->values.at(4)), 2.5);
  const auto old = s.get(demo_key(1));
  ASSERT_EQ(old->values.size(), 5u);
  EXPECT_TRUE(std::isnan(std::get<double>(old->values[4])));
  EXPECT_TRUE(s.check_files().empty());
}

}  // namespace
