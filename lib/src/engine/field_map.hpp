// A run's columns in the order of the store's definition of its job, which
// may have more fields, or the same in another order (Store::define_job
// widens a definition): the fields the run lacks get NaN, 0, false or "".
#pragma once

#include <algorithm>
#include <limits>
#include <vector>

#include "core/value_types.hpp"

namespace mpibatch::detail {

class FieldMap {
 public:
  FieldMap() = default;
  FieldMap(const std::vector<Field>& run, const std::vector<Field>& stored) {
    if (run == stored) return;
    for (const Field& f : stored) {
      const auto it =
          std::find_if(run.begin(), run.end(), [&f](const Field& r) { return r.name == f.name; });
      slots_.push_back(it == run.end() ? -1 : static_cast<int>(it - run.begin()));
      types_.push_back(f.type);
    }
  }

  // columns (one per run field, rows long) become one per stored field.
  void apply(std::vector<ValueColumn>& columns, std::size_t rows) const {
    if (slots_.empty() && types_.empty()) return;
    std::vector<ValueColumn> out;
    for (std::size_t f = 0; f < slots_.size(); ++f) {
      if (slots_[f] >= 0) {
        out.push_back(std::move(columns[static_cast<std::size_t>(slots_[f])]));
        continue;
      }
      out.push_back(empty_column(types_[f]));
      std::visit(
          [rows](auto& column) {
            using T = typename std::decay_t<decltype(column)>::value_type;
            if constexpr (std::is_same_v<T, double>)
              column.assign(rows, std::numeric_limits<double>::quiet_NaN());
            else
              column.assign(rows, T{});
          },
          out.back());
    }
    columns = std::move(out);
  }

 private:
  std::vector<int> slots_;  // per stored field: the run's column, or -1
  std::vector<FieldType> types_;
};

}  // namespace mpibatch::detail
