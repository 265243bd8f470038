#include "cli/grid_range.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <optional>

#include "cli/values.hpp"
#include "mpibatch/error.hpp"

namespace mpibatch::detail {

namespace {

constexpr std::int64_t kExactDoubles = std::int64_t{1} << 53;

// 10^0 .. 10^22: every one exact in a double.
constexpr double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                             1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

// A number written in decimal, as mantissa * 10^exponent with an exact
// mantissa; nullopt when it has more digits than an int64 holds or is not
// plain decimal (inf, nan, hex).
struct Decimal {
  std::int64_t mantissa;
  int exponent;
};

std::optional<Decimal> parse_decimal(std::string_view s) {
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  std::int64_t m = 0;
  int exponent = 0, digits = 0;
  bool point = false, any = false;
  std::size_t i = 0;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '.' && !point) {
      point = true;
      continue;
    }
    if (c < '0' || c > '9') break;
    any = true;
    if (m == 0 && c == '0') {  // leading zeros carry no digit
      if (point) --exponent;
      continue;
    }
    if (++digits > 18) return std::nullopt;
    m = m * 10 + (c - '0');
    if (point) --exponent;
  }
  if (!any) return std::nullopt;
  if (i < s.size()) {
    if (s[i] != 'e' && s[i] != 'E') return std::nullopt;
    int e = 0;
    const auto tail = s.substr(i + 1);
    const char* first = tail.data() + (!tail.empty() && tail[0] == '+' ? 1 : 0);
    auto [p, ec] = std::from_chars(first, tail.data() + tail.size(), e);
    if (ec != std::errc() || p != tail.data() + tail.size() || std::abs(e) > 400)
      return std::nullopt;
    exponent += e;
  }
  return Decimal{negative ? -m : m, exponent};
}

// m * 10^k as an int64 when it fits within the doubles' exact integers.
std::optional<std::int64_t> scaled(std::int64_t m, int k) {
  if (k < 0 || k > 18) return m == 0 ? std::optional<std::int64_t>(0) : std::nullopt;
  std::int64_t v = m;
  for (int j = 0; j < k; ++j) {
    if (v > kExactDoubles || v < -kExactDoubles) return std::nullopt;
    v *= 10;
  }
  if (v >= kExactDoubles || v <= -kExactDoubles) return std::nullopt;
  return v;
}

std::string trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

GridRange::GridRange(std::string_view text, FieldType type, const std::string& where) {
  const auto dots = text.find("..");
  const auto colon = text.find(':', dots);
  const std::string a = trimmed(text.substr(0, dots));
  const std::string b = trimmed(text.substr(
      dots + 2, colon == std::string_view::npos ? std::string_view::npos : colon - dots - 2));
  const std::string s = colon == std::string_view::npos ? "1" : trimmed(text.substr(colon + 1));
  text_ = type == FieldType::string;
  if (type == FieldType::string)
    type = (a + b + s).find_first_of(".eE") == std::string::npos ? FieldType::int64
                                                                 : FieldType::float64;
  auto fail = [&](const std::string& why) -> void { throw UsageError(where + ": " + why); };

  if (type == FieldType::int64) {
    auto integer = [&](const std::string& t, const char* what) {
      std::int64_t v = 0;
      auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
      if (ec != std::errc() || p != t.data() + t.size() || t.empty())
        fail("the range's " + std::string(what) + " '" + shown(t) + "' is not an int64 (from " +
             std::to_string(std::numeric_limits<std::int64_t>::min()) + " to " +
             std::to_string(std::numeric_limits<std::int64_t>::max()) + ")");
      return v;
    };
    start_ = integer(a, "start");
    const std::int64_t end = integer(b, "end");
    step_ = integer(s, "step");
    if (step_ <= 0) fail("the step must be > 0");
    if (end < start_) fail("the range ends before it starts");
    const std::uint64_t span = static_cast<std::uint64_t>(end) - static_cast<std::uint64_t>(start_);
    const std::uint64_t steps = span / static_cast<std::uint64_t>(step_);
    if (steps == std::numeric_limits<std::uint64_t>::max())
      fail("the range has more than 2^64 values");
    count_ = steps + 1;
    kind_ = Kind::integer;
    return;
  }

  auto number = [&](const std::string& t, const char* what) {
    double v = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || p != t.data() + t.size() || t.empty() || !std::isfinite(v))
      fail("the range's " + std::string(what) + " '" + shown(t) + "' is not a finite number");
    return v;
  };
  fstart_ = number(a, "start");
  const double end = number(b, "end");
  fstep_ = number(s, "step");
  if (fstep_ <= 0) fail("the step must be > 0");
  if (end < fstart_) fail("the range ends before it starts");

  const auto da = parse_decimal(a), db = parse_decimal(b), ds = parse_decimal(s);
  if (da && db && ds) {
    const int e = std::min({da->exponent, db->exponent, ds->exponent});
    const auto sa = scaled(da->mantissa, da->exponent - e),
               sb = scaled(db->mantissa, db->exponent - e),
               ss = scaled(ds->mantissa, ds->exponent - e);
    if (sa && sb && ss && *ss > 0 && e >= -22 && e <= 22) {
      if (*sb < *sa) fail("the range ends before it starts");
      kind_ = Kind::decimal;
      start_ = *sa;
      step_ = *ss;
      scale_ = e;
      count_ = static_cast<std::uint64_t>((*sb - *sa) / *ss) + 1;
      return;
    }
  }
  // Bounds that decimals cannot hold exactly: plain doubles.
  kind_ = Kind::binary;
  const double steps = std::floor((end - fstart_) / fstep_ * (1 + 1e-12));
  if (!(steps < 9007199254740992.0))  // 2^53
    fail("the range has more than 2^53 values; use a larger step");
  if (fstart_ + fstep_ == fstart_ || end + fstep_ == end)
    fail("the step " + s + " is too small to change the range's values");
  count_ = static_cast<std::uint64_t>(steps) + 1;
}

Value GridRange::at(std::uint64_t i) const {
  Value v;
  switch (kind_) {
    case Kind::integer:
      v = static_cast<std::int64_t>(static_cast<std::uint64_t>(start_) +
                                    i * static_cast<std::uint64_t>(step_));
      break;
    case Kind::decimal: {
      const auto n = static_cast<double>(start_ + static_cast<std::int64_t>(i) * step_);
      // Both exact, so the one rounding gives the double nearest the decimal.
      v = scale_ < 0 ? n / kPow10[-scale_] : n * kPow10[scale_];
      break;
    }
    case Kind::binary:
      v = fstart_ + fstep_ * static_cast<double>(i);
      break;
  }
  if (text_) return Value(std::in_place_type<std::string>, format_value(v));
  return v;
}

}  // namespace mpibatch::detail
