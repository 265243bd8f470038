// RowColumns: a segment flush decodes memtable records straight into
// columns (get_record_row); the rows must be those of the decoded Records.
#include "store/row_columns.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "store/frame_codec.hpp"

namespace {

using namespace mpibatch;
using detail::RowColumns;

const JobInfo kJob{"mix",
                   2,
                   "",
                   {{"n", FieldType::int64, "", ""}, {"tag", FieldType::string, "", ""}},
                   {{"x", FieldType::float64, "", ""},
                    {"ok", FieldType::boolean, "", ""},
                    {"name", FieldType::string, "", ""},
                    {"count", FieldType::int64, "", ""}}};

// Failed rows (no values, an error) among ok ones with every value type,
// long strings, and a row with fewer values than fields.
std::vector<Record> mixed_records() {
  std::mt19937_64 rng(11);
  std::vector<Record> out;
  for (int i = 0; i < 200; ++i) {
    Record r;
    r.key = TaskKey{rng(), rng()};
    r.job = kJob.name;
    r.job_version = kJob.version;
    r.rank = i % 4;
    r.run = 1 + i % 3;
    r.start_time = 1.7e9 + i;
    r.duration = 0.001 * i;
    r.params = {std::int64_t{i}, std::string(static_cast<std::size_t>(i % 40), 'p')};
    if (i % 5 == 0) {
      r.status = Status::failed;
      r.error = "boom " + std::to_string(i);
    } else {
      r.result = std::string(static_cast<std::size_t>(i % 13), static_cast<char>(i));
      r.values = {0.5 * i, i % 2 == 0, std::string(static_cast<std::size_t>(i % 30), 'v'),
                  std::int64_t{-i}};
      if (i % 7 == 0) r.values.resize(2);  // fewer values than fields
    }
    out.push_back(r);
  }
  return out;
}

TEST(RowColumns, DecodedRowsAreTheRecordsRows) {
  const auto records = mixed_records();
  RowColumns direct, via_records;
  direct.reset(kJob);
  via_records.reset(kJob);
  for (const Record& r : records) {
    std::string bytes;
    detail::put_record(bytes, r, 0);
    detail::Decoder d1(bytes);
    detail::get_record_row(d1, direct);
    EXPECT_TRUE(d1.done());
    detail::Decoder d2(bytes);
    Record back;
    detail::get_record(d2, back);
    via_records.add(back);
  }
  ASSERT_EQ(direct.size(), records.size());
  EXPECT_EQ(direct.keys, via_records.keys);
  EXPECT_EQ(direct.status, via_records.status);
  EXPECT_EQ(direct.rank, via_records.rank);
  EXPECT_EQ(direct.start_time, via_records.start_time);
  EXPECT_EQ(direct.duration, via_records.duration);
  EXPECT_EQ(direct.run, via_records.run);
  EXPECT_EQ(direct.result_sizes, via_records.result_sizes);
  EXPECT_EQ(direct.results, via_records.results);
  EXPECT_EQ(direct.error_at, via_records.error_at);
  EXPECT_EQ(direct.errors, via_records.errors);
  EXPECT_EQ(direct.params, via_records.params);

  // And the values are the records' own, with defaults where a row has none.
  const auto& x = std::get<std::vector<double>>(direct.values[0]);
  const auto& ok = std::get<std::vector<std::uint8_t>>(direct.values[1]);
  const auto& name = std::get<std::vector<std::string>>(direct.values[2]);
  const auto& count = std::get<std::vector<std::int64_t>>(direct.values[3]);
  std::string results;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    SCOPED_TRACE(i);
    EXPECT_EQ(direct.keys[i], r.key);
    EXPECT_EQ(direct.result_sizes[i], r.result.size());
    results += r.result;
    if (r.error.empty()) {
      EXPECT_EQ(direct.error_at[i], -1);
    } else {
      EXPECT_STREQ(direct.errors.c_str() + direct.error_at[i], r.error.c_str());
    }
    if (r.values.empty()) {
      EXPECT_TRUE(std::isnan(x[i]));
      EXPECT_EQ(ok[i], 0);
    } else {
      EXPECT_EQ(x[i], std::get<double>(r.values[0]));
      EXPECT_EQ(ok[i], std::get<bool>(r.values[1]) ? 1 : 0);
    }
    EXPECT_EQ(name[i], r.values.size() > 2 ? std::get<std::string>(r.values[2]) : "");
    EXPECT_EQ(count[i], r.values.size() > 3 ? std::get<std::int64_t>(r.values[3]) : 0);
  }
  EXPECT_EQ(direct.results, results);
}

TEST(RowColumns, ResetKeepsNothingAndValueOfAnotherTypeIsCorrupt) {
  RowColumns c;
  c.reset(kJob);
  Record r = mixed_records()[1];
  c.add(r);
  c.reset(kJob);
  EXPECT_EQ(c.size(), 0u);
  EXPECT_TRUE(c.results.empty());
  EXPECT_TRUE(std::get<std::vector<double>>(c.values[0]).empty());

  r.values[0] = std::string("not a number");  // the field x is float64
  std::string bytes;
  detail::put_record(bytes, r, 0);
  detail::Decoder d(bytes);
  EXPECT_THROW(detail::get_record_row(d, c), StoreCorruptError);
  EXPECT_THROW(c.add(r), StoreCorruptError);
}

}  // namespace
