#include "builtin_jobs.hpp"

#include <chrono>
#include <cmath>
#include <thread>

#include "mpibatch/command_line.hpp"
#include "mpibatch/error.hpp"

namespace mpibatch::jobs {

CommandJob pi_job();
CommandJob exec_job();
CommandJob csv_classify_job();
CommandJob image_resize_job();
CommandJob python_job();

namespace {

// sqrt: sqrt(x*x), a task that costs nothing: measures mpibatch's overhead.
CommandJob sqrt_job() {
  return {{"sqrt",
           1,
           "sqrt(x*x): a trivial task, for overhead measurements",
           {{"x", FieldType::float64, "", "input"}},
           {{"value", FieldType::float64, "", "sqrt(x*x)"}}},
          [](const Params& p) {
            const double x = p.number("x");
            return std::vector<Value>{std::sqrt(x * x)};
          }};
}

// sleep: waits, for latency and Slurm tests.
CommandJob sleep_job() {
  return {{"sleep",
           1,
           "sleeps for the given seconds",
           {{"seconds", FieldType::float64, "s", "how long to sleep"}},
           {{"slept", FieldType::float64, "s", "measured sleep"}}},
          [](const Params& p) {
            const double s = p.number("seconds");
            if (s < 0) throw UsageError("seconds must be >= 0, got " + std::to_string(s));
            const auto t0 = std::chrono::steady_clock::now();
            std::this_thread::sleep_for(std::chrono::duration<double>(s));
            return std::vector<Value>{
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
          }};
}

}  // namespace

void register_builtin_jobs() {
  register_job(pi_job());
  register_job(sqrt_job());
  register_job(sleep_job());
  register_job(exec_job());
  register_job(csv_classify_job());
  register_job(image_resize_job());
  register_job(python_job());
}

}  // namespace mpibatch::jobs
