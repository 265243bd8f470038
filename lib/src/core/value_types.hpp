// The one map from FieldType to C++ types: a field's Value alternative and
// its column's element (bool as uint8: std::vector<bool> has no data()).
// Code that acts on a runtime type goes through with_type() instead of its
// own switch; Value's and ValueColumn's alternatives are in FieldType's
// order (asserted below), so a type byte is the alternative's index.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "mpibatch/error.hpp"
#include "mpibatch/store.hpp"
#include "mpibatch/store_dispatch.hpp"

namespace mpibatch::detail {

template <FieldType T>
struct TypeOf;
template <>
struct TypeOf<FieldType::int64> {
  using value = std::int64_t;
  using element = std::int64_t;
};
template <>
struct TypeOf<FieldType::float64> {
  using value = double;
  using element = double;
};
template <>
struct TypeOf<FieldType::boolean> {
  using value = bool;
  using element = std::uint8_t;
};
template <>
struct TypeOf<FieldType::string> {
  using value = std::string;
  using element = std::string;
};

template <FieldType T>
constexpr bool in_order() {
  constexpr auto i = static_cast<std::size_t>(T);
  return std::is_same_v<std::variant_alternative_t<i, Value>, typename TypeOf<T>::value> &&
         std::is_same_v<std::variant_alternative_t<i, ValueColumn>,
                        std::vector<typename TypeOf<T>::element>>;
}
static_assert(in_order<FieldType::int64>() && in_order<FieldType::float64>() &&
                  in_order<FieldType::boolean>() && in_order<FieldType::string>() &&
                  std::variant_size_v<Value> == 4 && std::variant_size_v<ValueColumn> == 4,
              "Value and ValueColumn list FieldType's types in its order");

// Returns fn(TypeOf<t>{}). Throws StoreCorruptError for a t outside
// FieldType (a damaged type byte).
template <class Fn>
decltype(auto) with_type(FieldType t, Fn&& fn) {
  switch (t) {
    case FieldType::int64:
      return fn(TypeOf<FieldType::int64>{});
    case FieldType::float64:
      return fn(TypeOf<FieldType::float64>{});
    case FieldType::boolean:
      return fn(TypeOf<FieldType::boolean>{});
    case FieldType::string:
      return fn(TypeOf<FieldType::string>{});
  }
  throw StoreCorruptError("value of unknown type " + std::to_string(static_cast<int>(t)));
}

inline FieldType type_of(const Value& v) {
  return static_cast<FieldType>(v.index());
}
inline FieldType type_of(const ValueColumn& c) {
  return static_cast<FieldType>(c.index());
}

inline ValueColumn empty_column(FieldType type) {
  return with_type(
      type, [](auto t) -> ValueColumn { return std::vector<typename decltype(t)::element>{}; });
}

// What a failed task's result cell holds when it failed without values:
// NaN, 0, false or "". A failed row whose cells all are is stored and read
// back with no values.
template <class T>
bool is_stand_in(const T& v) {
  if constexpr (std::is_same_v<T, double>)
    return v != v;
  else
    return v == T{};
}
inline bool is_stand_in(const Value& v) {
  return std::visit([](const auto& x) { return is_stand_in(x); }, v);
}
inline bool is_stand_in(const ValueColumn& c, std::size_t row) {
  return std::visit([row](const auto& col) { return is_stand_in(col[row]); }, c);
}

// Why values (or columns, one per field) do not fit fields: their number, or
// the first field whose value has another type; "" when they fit. what names
// the kind of field ("result", "param"); callers put "<whose>: " before it.
template <class V>
std::string misfit(const std::vector<Field>& fields, const std::vector<V>& values,
                   const char* what) {
  constexpr bool columns = std::is_same_v<V, ValueColumn>;
  const char* noun = columns ? " columns" : " values";
  if (values.size() != fields.size()) {
    return std::to_string(values.size()) + " " + what + noun + "; the job defines " +
           std::to_string(fields.size());
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (type_of(values[i]) != fields[i].type) {
      return std::string(what) + " field '" + fields[i].name + "' has a " +
             (columns ? "column" : "value") + " of the wrong type (" +
             to_string(type_of(values[i])) + ", not " + to_string(fields[i].type) + ")";
    }
  }
  return {};
}

}  // namespace mpibatch::detail
