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
namespace {

template <class T>
const T& get(const Value& v, std::string_view name, const char* type) {
  if (const T* x = std::get_if<T>(&v)) return *x;
  throw UsageError("parameter '" + std::string(name) + "' is not " + type);
}

}  // namespace

std::int64_t Params::integer(std::string_view name) const {
  return get<std::int64_t>(at(name), name, "an int64");
}
double Params::number(std::string_view name) const {
  const Value& v = at(name);
  if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  return get<double>(v, name, "a number");
}
bool Params::flag(std::string_view name) const {
  return get<bool>(at(name), name, "a bool");
}
const std::string& Params::text(std::string_view name) const {
  return get<std::string>(at(name), name, "a string");
}

namespace detail {

ErasedJob erase(const CommandJob& job) {
  // A task's input is its row of params (row_codec.hpp); its results travel
  // and are stored as columns only.
  ErasedJob erased{job.info, [&job](std::string_view in, std::vector<Value>& values,
                                    std::vector<Value>& params) {
                     detail::decode_row(in, params);
                     values = job.fn(Params(job.info.params, params));
                     return Bytes();
                   }};
  erased.params = [](std::string_view in, std::vector<Value>& params) {
    detail::decode_row(in, params);
  };
  if (job.key_params > 0 && job.key_params < job.info.params.size()) {
    erased.key_input = [n = job.key_params](std::string_view in, Bytes& key_input) {
      detail::encode_row_prefix(in, n, key_input);
    };
  }
  return erased;
}

}  // namespace detail

RunSummary run(const Environment& env, const CommandJob& job, const RowStream& rows,
               const RunOptions& options, std::optional<std::uint64_t> task_count) {
  const detail::ErasedJob erased = detail::erase(job);
  std::vector<Value> row;
  const detail::TaskSource source = [&](Bytes& input) {
    if (!rows || !rows(row)) return false;
    detail::encode_row(row, input);
    return true;
  };
  return detail::run_erased(env, erased, source, options, task_count);
}

}  // namespace mpibatch
