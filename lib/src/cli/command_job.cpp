// A command-line job's parameters, and running it over rows of them.
#include <string>

#include "cli/row_codec.hpp"
#include "mpibatch/command_line.hpp"

namespace mpibatch {

const Value& Params::at(std::string_view name) const {
  for (std::size_t i = 0; i < fields_.size(); ++i)
    if (fields_[i].name == name && i < values_.size()) return values_[i];
  throw UsageError("no parameter '" + std::string(name) + "'");
}
std::int64_t Params::integer(std::string_view name) const {
  const Value& v = at(name);
  if (v.index() != 0) throw UsageError("parameter '" + std::string(name) + "' is not an int64");
  return std::get<std::int64_t>(v);
}
double Params::number(std::string_view name) const {
  const Value& v = at(name);
  if (v.index() == 0) return static_cast<double>(std::get<std::int64_t>(v));
  if (v.index() != 1) throw UsageError("parameter '" + std::string(name) + "' is not a number");
  return std::get<double>(v);
}
bool Params::flag(std::string_view name) const {
  const Value& v = at(name);
  if (v.index() != 2) throw UsageError("parameter '" + std::string(name) + "' is not a bool");
  return std::get<bool>(v);
}
const std::string& Params::text(std::string_view name) const {
  const Value& v = at(name);
  if (v.index() != 3) throw UsageError("parameter '" + std::string(name) + "' is not a string");
  return std::get<std::string>(v);
}

RunSummary run(const Environment& env, const CommandJob& job, const RowStream& rows,
               const RunOptions& options, std::optional<std::uint64_t> task_count) {
  // A task's input is its row of params (row_codec.hpp); its results travel
  // and are stored as columns only.
  const detail::ErasedJob erased{job.info, [&job](std::string_view in, std::vector<Value>& values,
                                                  std::vector<Value>& params) {
                                   detail::decode_row(in, params);
                                   values = job.fn(Params(job.info.params, params));
                                   return Bytes();
                                 }};
  std::vector<Value> row;
  const detail::TaskSource source = [&](Bytes& input) {
    if (!rows || !rows(row)) return false;
    detail::encode_row(row, input);
    return true;
  };
  return detail::run_erased(env, erased, source, options, task_count);
}

}  // namespace mpibatch
