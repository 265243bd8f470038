// libFuzzer target: --grid ranges (GridRange, "a..b[:step]"). Byte 0 picks
// the param's type; the rest is the text after "name=" (the command line
// makes a GridRange only of text with ".."). A range that parses must have
// at least one value, every value of the param's type, and numbers that
// never decrease.
#include <cstdio>
#include <cstdlib>

#include "cli/grid_range.hpp"
#include "fuzz_support.hpp"

namespace {

using namespace mpibatch;
using namespace mpibatch::detail;

using fuzz::fail;

double number(const Value& v) {
  if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  return std::get<double>(v);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  constexpr FieldType kTypes[] = {FieldType::int64, FieldType::float64, FieldType::string};
  const FieldType type = kTypes[data[0] % 3];
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (text.find("..") == std::string_view::npos) return 0;
  try {
    const GridRange r(text, type, "--grid x=...");
    const std::uint64_t n = r.size();
    if (n == 0) fail("a range of no values");
    const std::uint64_t at[] = {0, 1, 2, n / 2, n / 2 + 1, n - 2, n - 1};
    for (const std::uint64_t i : at) {
      if (n < 2 || i > n - 2) continue;  // each i with an i + 1
      const Value a = r.at(i), b = r.at(i + 1);
      if (static_cast<FieldType>(a.index()) != type || a.index() != b.index())
        fail("a range value of another type than its param");
      if (type != FieldType::string && !(number(a) <= number(b))) fail("a range that decreases");
    }
    (void)r.at(n - 1);
  } catch (const Error&) {
  }
  return 0;
}
