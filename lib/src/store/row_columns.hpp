// Rows of one job version column by column, as a table stores them: what a
// segment flush decodes a memtable's records into, and TableWriter writes.
// Decoding straight into columns builds no Record per row.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "core/value_types.hpp"
#include "mpibatch/error.hpp"
#include "mpibatch/store.hpp"
#include "mpibatch/store_dispatch.hpp"

namespace mpibatch::detail {

struct RowColumns {
  std::vector<TaskKey> keys;
  std::vector<std::int8_t> status;
  std::vector<std::int32_t> rank;
  std::vector<double> start_time;
  std::vector<double> duration;
  std::vector<std::int64_t> run;
  std::vector<std::uint64_t> result_sizes;
  std::string results;                 // the rows' result bytes, one after another
  std::vector<std::int64_t> error_at;  // where a row's message starts in errors; -1: none
  std::string errors;                  // messages, each ended by a NUL (HDF5 C strings)
  // One per field of the job, of its type (bool as 0/1); a row without
  // values (a failed one) has NaN, 0, false or "".
  std::vector<ValueColumn> values;
  std::vector<ValueColumn> params;

  std::size_t size() const { return keys.size(); }

  // Empties every column (keeping its memory) and types the value columns
  // as job's fields.
  void reset(const JobInfo& job) {
    keys.clear();
    status.clear();
    rank.clear();
    start_time.clear();
    duration.clear();
    run.clear();
    result_sizes.clear();
    results.clear();
    error_at.clear();
    errors.clear();
    type(values, job.results);
    type(params, job.params);
  }

  void add_error(std::string_view message) {
    if (message.empty()) {
      error_at.push_back(-1);
      return;
    }
    error_at.push_back(static_cast<std::int64_t>(errors.size()));
    errors.append(message);
    errors.push_back('\0');
  }

  // Appends one value to a field's column. Throws StoreCorruptError when
  // its type is not the column's.
  template <class T>
  static void add_value(ValueColumn& column, T&& v) {
    using Want =
        std::conditional_t<std::is_same_v<std::decay_t<T>, bool>, std::uint8_t, std::decay_t<T>>;
    auto* col = std::get_if<std::vector<Want>>(&column);
    if (col == nullptr) throw StoreCorruptError("record value of another type than its field");
    col->push_back(static_cast<Want>(std::forward<T>(v)));
  }

  // Appends the defaults of the columns from `from` on (a row with fewer values).
  static void add_defaults(std::vector<ValueColumn>& columns, std::size_t from) {
    for (std::size_t c = from; c < columns.size(); ++c) {
      std::visit(
          [](auto& col) {
            using T = typename std::decay_t<decltype(col)>::value_type;
            if constexpr (std::is_same_v<T, double>)
              col.push_back(std::numeric_limits<double>::quiet_NaN());
            else
              col.emplace_back();
          },
          columns[c]);
    }
  }

  // Appends r's row.
  void add(const Record& r) {
    keys.push_back(r.key);
    status.push_back(static_cast<std::int8_t>(r.status));
    rank.push_back(r.rank);
    start_time.push_back(r.start_time);
    duration.push_back(r.duration);
    run.push_back(r.run);
    result_sizes.push_back(r.result.size());
    results += r.result;
    add_error(r.error);
    for (const auto& p : {std::pair{&r.values, &values}, std::pair{&r.params, &params}}) {
      auto* const vals = p.first;  // not a structured binding: clang 14 cannot capture one
      auto* const cols = p.second;
      const std::size_t n = std::min(vals->size(), cols->size());
      for (std::size_t c = 0; c < n; ++c)
        std::visit([&](const auto& v) { add_value((*cols)[c], v); }, (*vals)[c]);
      add_defaults(*cols, n);
    }
  }

 private:
  static void type(std::vector<ValueColumn>& columns, const std::vector<Field>& fields) {
    columns.resize(fields.size());
    for (std::size_t c = 0; c < fields.size(); ++c) {
      if (type_of(columns[c]) != fields[c].type) columns[c] = empty_column(fields[c].type);
      std::visit([](auto& col) { col.clear(); }, columns[c]);
    }
  }
};

}  // namespace mpibatch::detail
