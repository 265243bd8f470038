// Registering command-line jobs, and a task's Params.
#include <gtest/gtest.h>

#include "mpibatch/command_line.hpp"

namespace {

using namespace mpibatch;

CommandJob job_named(const std::string& name) {
  return {{name, 1, "", {{"x", FieldType::int64, "", ""}}, {{"y", FieldType::int64, "", ""}}},
          [](const Params& p) { return std::vector<Value>{p.integer("x")}; }};
}

void expect_refused(CommandJob job, const std::string& says) {
  try {
    register_job(std::move(job));
    ADD_FAILURE() << "registered; should say: " << says;
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
  }
}

TEST(RegisterJob, RunOptionsMayNotShadowTheCommandsOwnOrClashInType) {
  auto planned = [](const std::string& name, std::vector<Field> options) {
    CommandJob j = job_named(name);
    j.run_options = std::move(options);
    j.plan_rows = [](const Params&) { return RowPlan{}; };
    return j;
  };
  expect_refused(planned("a1", {{"store", FieldType::string, "", ""}}), "run's or submit's own");
  expect_refused(planned("a2", {{"dry_run", FieldType::boolean, "", ""}}), "run's or submit's own");
  CommandJob no_plan = job_named("a3");
  no_plan.run_options = {{"mode", FieldType::string, "", ""}};
  expect_refused(std::move(no_plan), "no plan_rows");
  register_job(planned("b1", {{"mode", FieldType::string, "", ""}}));
  expect_refused(planned("b2", {{"mode", FieldType::int64, "", ""}}), "another type in job b1");
  register_job(planned("b3", {{"mode", FieldType::string, "", ""}}));  // same type: shared
  expect_refused(job_named("b1"), "registered twice");
}

TEST(Params, TypedAccessAndClearErrors) {
  const std::vector<Field> fields{{"n", FieldType::int64, "", ""},
                                  {"x", FieldType::float64, "", ""},
                                  {"on", FieldType::boolean, "", ""},
                                  {"s", FieldType::string, "", ""}};
  const std::vector<Value> values{std::int64_t{3}, 0.5, true, std::string("t")};
  const Params p(fields, values);
  EXPECT_EQ(p.integer("n"), 3);
  EXPECT_EQ(p.number("n"), 3.0);  // an int64 is a number too
  EXPECT_EQ(p.number("x"), 0.5);
  EXPECT_TRUE(p.flag("on"));
  EXPECT_EQ(p.text("s"), "t");
  EXPECT_THROW(p.integer("x"), UsageError);
  EXPECT_THROW(p.number("s"), UsageError);
  try {
    p.text("missing");
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "no parameter 'missing'");
  }
}

}  // namespace
