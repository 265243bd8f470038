// An arithmetic --grid range, "a..b[:step]" (inclusive), counted and
// stepped exactly: integers in integer arithmetic, and decimals as the
// values a user would type (0.1..0.2:0.002 gives 0.102, the double that
// "0.102" parses to, so a later --grid s=0.102 finds the same task).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "mpibatch/store.hpp"

namespace mpibatch::detail {

class GridRange {
 public:
  // Parses text (the part after "name=") for a parameter of type: int64 and
  // float64 give values of that type; a string parameter gets the numbers as
  // text, integers if all three are written without '.', 'e' or 'E'. Throws
  // UsageError naming where for a bound that is not a finite number of the
  // type, a step <= 0, an end before the start, or a step too small to move
  // the values.
  GridRange(std::string_view text, FieldType type, const std::string& where);

  // The number of values, at least 1.
  std::uint64_t size() const { return count_; }
  // Value i < size(), of the parameter's type.
  Value at(std::uint64_t i) const;

 private:
  enum class Kind : std::uint8_t { integer, decimal, binary };
  Kind kind_ = Kind::integer;
  bool text_ = false;
  std::uint64_t count_ = 0;
  std::int64_t start_ = 0, step_ = 0;  // integer: the values; decimal: scaled by 10^scale_
  int scale_ = 0;                      // decimal: values are (start_ + i step_) * 10^scale_
  double fstart_ = 0, fstep_ = 0;      // binary: start + i step in doubles
};

}  // namespace mpibatch::detail
