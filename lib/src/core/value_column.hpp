// Making ValueColumns of a given type: the engine's batches, their
// serialization and the store's flush all build them from a type index.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "mpibatch/store_dispatch.hpp"

namespace mpibatch::detail {

// An empty column of alternative `index` (FieldType's order: int64, float64,
// bool as 0/1, string; anything beyond is string).
inline ValueColumn empty_column(std::size_t index) {
  switch (index) {
    case 0:
      return std::vector<std::int64_t>{};
    case 1:
      return std::vector<double>{};
    case 2:
      return std::vector<std::uint8_t>{};
    default:
      return std::vector<std::string>{};
  }
}

inline ValueColumn empty_column(FieldType type) {
  return empty_column(static_cast<std::size_t>(type));
}

}  // namespace mpibatch::detail
