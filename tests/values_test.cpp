// The command line's text-to-value parsing: durations, values and task rows.
#include "cli/values.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "cli/task_rows.hpp"
#include "test_support.hpp"

namespace {

using mpibatch::Field;
using mpibatch::FieldType;
using mpibatch::JobInfo;
using mpibatch::UsageError;
using mpibatch::Value;
using mpibatch::detail::parse_duration;
using mpibatch::detail::parse_value;
using mpibatch::detail::TaskRows;
using mpibatch::detail::TaskSpec;

TEST(ParseDuration, SecondsUnitsAndSlurmForms) {
  EXPECT_EQ(parse_duration("90", "--time-limit"), 90);
  EXPECT_EQ(parse_duration(" 2.5 ", "--time-limit"), 2.5);
  EXPECT_EQ(parse_duration("90s", "--time-limit"), 90);
  EXPECT_EQ(parse_duration("15m", "--time-limit"), 900);
  EXPECT_EQ(parse_duration("2h", "--time-limit"), 7200);
  EXPECT_EQ(parse_duration("1h30m", "--time-limit"), 5400);
  EXPECT_EQ(parse_duration("1d2h", "--time-limit"), 93600);
  EXPECT_EQ(parse_duration("1:30:00", "--time-limit"), 5400);
  EXPECT_EQ(parse_duration("30:00", "--time-limit"), 1800);  // Slurm's MM:SS
  EXPECT_EQ(parse_duration("2-00:00:00", "--time-limit"), 172800);
  EXPECT_EQ(parse_duration("1-12", "--time-limit"), 129600);  // Slurm's D-HH
  EXPECT_EQ(parse_duration("1-1:30", "--time-limit"), 86400 + 5400);
}

TEST(ParseDuration, BadFormsNameTheOption) {
  for (const char* bad : {"", "abc", "1h30", "-5", "1:2:3:4", "5x", "1..2"}) {
    try {
      parse_duration(bad, "--time-limit");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("--time-limit '"), std::string::npos) << e.what();
    }
  }
}

TEST(ParseValue, EachTypeAndItsErrors) {
  const Field i{"n", FieldType::int64, "", ""}, f{"x", FieldType::float64, "", ""},
      b{"on", FieldType::boolean, "", ""}, s{"name", FieldType::string, "", ""};
  EXPECT_EQ(std::get<std::int64_t>(parse_value(i, " -42 ", "w")), -42);
  EXPECT_EQ(std::get<double>(parse_value(f, "0.125", "w")), 0.125);
  EXPECT_EQ(std::get<bool>(parse_value(b, "yes", "w")), true);
  EXPECT_EQ(std::get<bool>(parse_value(b, "FALSE", "w")), false);
  EXPECT_EQ(std::get<std::string>(parse_value(s, " kept as is ", "w")), " kept as is ");
  try {
    parse_value(i, "4.5", "tasks.csv row 3, column 'n'");
    ADD_FAILURE() << "4.5 accepted as int64";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(),
                 "tasks.csv row 3, column 'n': '4.5' is not a valid int64 for parameter 'n'");
  }
  EXPECT_THROW(parse_value(i, "99999999999999999999", "w"), UsageError);
  EXPECT_THROW(parse_value(f, "1e", "w"), UsageError);
  EXPECT_THROW(parse_value(b, "maybe", "w"), UsageError);
}

JobInfo two_params() {
  return JobInfo{
      "j", 1, "", {{"a", FieldType::int64, "", ""}, {"b", FieldType::string, "", ""}}, {}};
}

std::vector<std::vector<Value>> all_rows(TaskRows& rows) {
  std::vector<std::vector<Value>> out;
  std::vector<Value> row;
  while (rows.next(row)) out.push_back(row);
  return out;
}

TEST(TaskRows, GridIsTheCartesianProductLastNameFastest) {
  const JobInfo job = two_params();
  TaskRows rows(job, TaskSpec{"", {"a=1..2", "b=x,y,z"}, {}});
  ASSERT_EQ(rows.count(), 6u);
  const auto got = all_rows(rows);
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(std::get<std::int64_t>(got[0][0]), 1);
  EXPECT_EQ(std::get<std::string>(got[0][1]), "x");
  EXPECT_EQ(std::get<std::string>(got[2][1]), "z");
  EXPECT_EQ(std::get<std::int64_t>(got[3][0]), 2);
}

TEST(TaskRows, ParamIsTheSameForEveryRowAndMissingOnesAreNamed) {
  const JobInfo job = two_params();
  TaskRows rows(job, TaskSpec{"", {"a=5..7"}, {"b=fixed"}});
  const auto got = all_rows(rows);
  ASSERT_EQ(got.size(), 3u);
  for (const auto& r : got) EXPECT_EQ(std::get<std::string>(r[1]), "fixed");
  try {
    TaskRows missing(job, TaskSpec{"", {"a=1..2"}, {}});
    ADD_FAILURE() << "b given nowhere, accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("'b'"), std::string::npos) << e.what();
  }
}

TEST(TaskRows, CsvFileRowsAndABadRowNamed) {
  mpibatch::test_support::TempDir dir;
  const std::string path = (dir / "tasks.csv").string();
  std::ofstream(path) << "b,a\nfirst,1\n\"with, comma\",2\nthird,x\n";
  const JobInfo job = two_params();
  TaskRows rows(job, TaskSpec{path, {}, {}});
  EXPECT_FALSE(rows.count().has_value());
  std::vector<Value> row;
  ASSERT_TRUE(rows.next(row));
  EXPECT_EQ(std::get<std::int64_t>(row[0]), 1);
  EXPECT_EQ(std::get<std::string>(row[1]), "first");
  ASSERT_TRUE(rows.next(row));
  EXPECT_EQ(std::get<std::string>(row[1]), "with, comma");
  try {
    rows.next(row);
    ADD_FAILURE() << "a=x accepted";
  } catch (const UsageError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("tasks.csv"), std::string::npos) << m;
    EXPECT_NE(m.find("'x'"), std::string::npos) << m;
  }
}

}  // namespace
