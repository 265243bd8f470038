// --grid ranges: exact counts and the values a user would type.
#include "cli/grid_range.hpp"

#include <gtest/gtest.h>

#include <charconv>
#include <limits>

#include "cli/task_rows.hpp"
#include "cli/values.hpp"

namespace {

using mpibatch::FieldType;
using mpibatch::UsageError;
using mpibatch::Value;
using mpibatch::detail::GridRange;

double parsed(const std::string& text) {
  double v = 0;
  std::from_chars(text.data(), text.data() + text.size(), v);
  return v;
}

TEST(GridRange, DecimalValuesAreThoseTheirTextParsesTo) {
  const GridRange r("0.1..0.2:0.002", FieldType::float64, "--grid s");
  ASSERT_EQ(r.size(), 51u);
  EXPECT_EQ(std::get<double>(r.at(1)), parsed("0.102"));
  for (std::uint64_t i = 0; i < r.size(); ++i) {
    const std::string text = std::to_string(100 + 2 * i);  // thousandths
    EXPECT_EQ(std::get<double>(r.at(i)), parsed("0." + text)) << i;
  }
  EXPECT_EQ(std::get<double>(r.at(50)), 0.2);
  const GridRange e("-1e-3..1e-3:2.5e-4", FieldType::float64, "--grid s");
  ASSERT_EQ(e.size(), 9u);
  EXPECT_EQ(std::get<double>(e.at(1)), parsed("-0.00075"));
  EXPECT_EQ(std::get<double>(e.at(4)), 0.0);
  const GridRange big("1e3..5e3:1e3", FieldType::float64, "--grid s");
  EXPECT_EQ(big.size(), 5u);
  EXPECT_EQ(std::get<double>(big.at(4)), 5000.0);
}

TEST(GridRange, IntegersAreExactAtTheEndsOfInt64) {
  const GridRange r("9223372036854775000..9223372036854775807:500", FieldType::int64, "--grid row");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(std::get<std::int64_t>(r.at(0)), 9223372036854775000);
  EXPECT_EQ(std::get<std::int64_t>(r.at(1)), 9223372036854775500);
  const GridRange all("-9223372036854775808..9223372036854775807:9223372036854775807",
                      FieldType::int64, "--grid row");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(std::get<std::int64_t>(all.at(2)), 9223372036854775806);
  EXPECT_EQ(GridRange("0..999999", FieldType::int64, "g").size(), 1000000u);
}

TEST(GridRange, HugeRangesAreCountedNotWalked) {
  EXPECT_EQ(GridRange("1..1e12", FieldType::float64, "g").size(), 1000000000000u);
  EXPECT_EQ(GridRange("1..1000000000000", FieldType::int64, "g").size(), 1000000000000u);
}

TEST(GridRange, BadRangesAreRefusedNamingTheOption) {
  for (const char* bad : {"nan..1", "0..inf", "0..1e20", "0..1:1e-300", "1..0", "0..1:0",
                          "0..1:-0.5", "0..1e400", "a..1"}) {
    try {
      GridRange r(bad, FieldType::float64, "--grid x=" + std::string(bad));
      ADD_FAILURE() << bad << " accepted with " << r.size() << " values";
    } catch (const UsageError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("--grid x=" + std::string(bad) + ": ", 0), 0u)
          << e.what();
    }
  }
  EXPECT_THROW(GridRange("0.9000000000000002..0.9000000000000001:1e-16", FieldType::float64, "g"),
               UsageError)
      << "reversed, though the doubles are equal";
  for (const char* bad : {"0..9223372036854775808", "0.5..3", "0..10:0", "0..1e3"})
    EXPECT_THROW(GridRange(bad, FieldType::int64, "g"), UsageError) << bad;
  EXPECT_THROW(GridRange("-9223372036854775808..9223372036854775807", FieldType::int64, "g"),
               UsageError);  // 2^64 values
}

TEST(GridRange, StringParametersGetTheNumbersAsTyped) {
  const GridRange f("0.1..0.3:0.1", FieldType::string, "g");
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(std::get<std::string>(f.at(0)), "0.1");
  EXPECT_EQ(std::get<std::string>(f.at(1)), "0.2");
  EXPECT_EQ(std::get<std::string>(f.at(2)), "0.3");
  const GridRange n("8..10", FieldType::string, "g");
  EXPECT_EQ(std::get<std::string>(n.at(2)), "10");
}

TEST(GridRange, AFloatRangeMatchesTheSameValuesGivenAsAList) {
  const mpibatch::JobInfo job{"j", 1, "", {{"s", FieldType::float64, "", ""}}, {}};
  mpibatch::detail::TaskRows range(job, {.grid = {"s=0.1..0.2:0.002"}});
  std::string list;
  for (int i = 0; i <= 50; ++i)
    list += (i ? "," : "") + std::to_string(0.1 + 0.002 * i).substr(0, 5);
  mpibatch::detail::TaskRows listed(job, {.grid = {"s=" + list}});
  std::vector<Value> a, b;
  int n = 0;
  while (range.next(a)) {
    ASSERT_TRUE(listed.next(b));
    EXPECT_EQ(a, b) << n;
    ++n;
  }
  EXPECT_FALSE(listed.next(b));
  EXPECT_EQ(n, 51);
}

TEST(TaskRows, AGridIsCountedWithoutReadingAndOverflowIsRefused) {
  const mpibatch::JobInfo job{
      "j", 1, "", {{"a", FieldType::int64, "", ""}, {"b", FieldType::float64, "", ""}}, {}};
  mpibatch::detail::TaskRows rows(job, {.grid = {"a=1..1000000", "b=0..1e6"}});
  EXPECT_EQ(rows.count(), std::optional<std::uint64_t>(1000000ull * 1000001ull));
  EXPECT_THROW(mpibatch::detail::TaskRows(job, {.grid = {"a=0..9223372036854775806", "b=0..3"}}),
               UsageError);
}

}  // namespace
