// A job: a named, versioned C++ function from a Boost-serializable input to
// a Boost-serializable result. The name, version and input bytes make a
// task's key: changing the version invalidates the job's cached results,
// and nothing else does.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "mpibatch/serialization.hpp"
#include "mpibatch/store.hpp"

namespace mpibatch {

// Which native HDF5 columns a result type gets in the store. Numbers, bools
// and strings get one column named "value"; other types none, unless the
// job lists its own result fields and a values function. Specialize it for
// your own struct to get columns everywhere it is used.
template <class T>
struct ResultTraits {
  static std::vector<Field> fields() { return {}; }
  static std::vector<Value> values(const T&) { return {}; }
};

template <class T>
requires std::is_arithmetic_v<T> || std::same_as<T, std::string>
struct ResultTraits<T> {
  static constexpr FieldType type() {
    if constexpr (std::is_same_v<T, bool>)
      return FieldType::boolean;
    else if constexpr (std::is_integral_v<T>)
      return FieldType::int64;
    else if constexpr (std::is_floating_point_v<T>)
      return FieldType::float64;
    else
      return FieldType::string;
  }
  static std::vector<Field> fields() { return {Field{"value", type(), "", "the task's result"}}; }
  static std::vector<Value> values(const T& v) {
    if constexpr (std::is_same_v<T, bool>)
      return {Value(v)};
    else if constexpr (std::is_integral_v<T>)
      return {Value(static_cast<std::int64_t>(v))};
    else if constexpr (std::is_floating_point_v<T>)
      return {Value(static_cast<double>(v))};
    else
      return {Value(v)};
  }
};

namespace detail {

// A job with its types erased: what the engine runs.
struct ErasedJob {
  JobInfo info;
  // Runs one task on its serialized input: fills params (one per param field)
  // first, then runs the task, returns its serialized result and fills values
  // (one per result field). Throws whatever the task throws.
  std::function<Bytes(std::string_view input, std::vector<Value>& values,
                      std::vector<Value>& params)>
      call;
  // Writes the part of an input that makes its key (task_key) to key_input;
  // null: the whole input does.
  std::function<void(std::string_view input, Bytes& key_input)> key_input;
  // Fills params from an input without running the task (a task that is not
  // run again is still stored with its params); null: stand-ins are stored.
  std::function<void(std::string_view input, std::vector<Value>& params)> params;

  // The task's key (task_key of its key input); scratch is reused.
  TaskKey key(std::string_view input, Bytes& scratch) const {
    if (!key_input) return task_key(info.name, info.version, input);
    key_input(input, scratch);
    return task_key(info.name, info.version, scratch);
  }
};

}  // namespace detail

template <class In, class Out>
struct Job {
  std::string name;
  std::int64_t version = 1;
  std::function<Out(const In&)> fn;
  std::string description;
  std::vector<Field> params;  // the input's fields, stored as columns: set param_values too
  std::function<std::vector<Value>(const In&)> param_values;
  std::vector<Field> results = ResultTraits<Out>::fields();
  std::function<std::vector<Value>(const Out&)> values = &ResultTraits<Out>::values;

  JobInfo info() const { return JobInfo{name, version, description, params, results}; }

  TaskKey key(const In& input) const { return task_key(name, version, to_bytes(input)); }

  // Throws UsageError when params lists fields but param_values is not set.
  detail::ErasedJob erase() const {
    if (!params.empty() && !param_values) {
      throw UsageError("job " + name + " lists param fields but has no param_values function");
    }
    detail::ErasedJob erased{
        info(), [f = fn, v = values, pv = param_values](
                    std::string_view in, std::vector<Value>& out, std::vector<Value>& par) {
          const In input = from_bytes<In>(in);
          if (pv) par = pv(input);
          const Out result = f(input);
          out = v(result);
          return to_bytes(result);
        }};
    if (param_values) {
      erased.params = [pv = param_values](std::string_view in, std::vector<Value>& par) {
        par = pv(from_bytes<In>(in));
      };
    }
    return erased;
  }
};

}  // namespace mpibatch
