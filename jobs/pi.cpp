// pi: the Leibniz series with 10^order terms, the seed tutorials' workload.
#include <cmath>

#include "builtin_jobs.hpp"
#include "mpibatch/command_line.hpp"
#include "mpibatch/error.hpp"

namespace mpibatch::jobs {

double leibniz_pi(std::int64_t order) {
  if (order < 0 || order > 12)
    throw UsageError("order must be 0 to 12, got " + std::to_string(order));
  const auto terms =
      static_cast<std::int64_t>(std::llround(std::pow(10.0, static_cast<double>(order))));
  double sum = 0;
  for (std::int64_t k = 0; k < terms; ++k)
    sum += (k % 2 == 0 ? 4.0 : -4.0) / static_cast<double>(2 * k + 1);
  return sum;
}

CommandJob pi_job() {
  return {{"pi",
           1,
           "pi by the Leibniz series with 10^order terms",
           {{"row", FieldType::int64, "", "task number (makes each task distinct)"},
            {"order", FieldType::int64, "", "log10 of the number of terms (0 to 12)"}},
           {{"value", FieldType::float64, "", "the estimate of pi"},
            {"deviation", FieldType::float64, "", "value - pi"}}},
          [](const Params& p) {
            const double v = leibniz_pi(p.integer("order"));
            return std::vector<Value>{v, v - M_PI};
          }};
}

}  // namespace mpibatch::jobs
