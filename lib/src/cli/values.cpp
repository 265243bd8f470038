#include "cli/values.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <vector>

#include "core/value_types.hpp"
#include "mpibatch/error.hpp"

namespace mpibatch::detail {

const char* type_name(FieldType t) {
  return to_string(t);
}

std::string shell_word(const std::string& word, bool always) {
  const bool plain = !always && !word.empty() &&
                     word.find_first_not_of(
                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                         "_@%+=:,./-") == std::string::npos;
  if (plain) return word;
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string plural(std::uint64_t n, const std::string& noun, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? noun : many.empty() ? noun + "s" : many);
}

std::string shown(std::string_view text) {
  if (text.size() <= 100) return std::string(text);
  return std::string(text.substr(0, 60)) + "... (" + std::to_string(text.size()) + " bytes)";
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

[[noreturn]] void bad(const Field& f, std::string_view text, const std::string& where) {
  throw UsageError(where + ": '" + shown(text) + "' is not a valid " + type_name(f.type) +
                   " for parameter '" + f.name + "'");
}

}  // namespace

Value parse_value(const Field& field, std::string_view raw, const std::string& where) {
  const std::string_view text = field.type == FieldType::string ? raw : trim(raw);
  return with_type(field.type, [&](auto type) -> Value {
    using T = typename decltype(type)::value;
    if constexpr (std::is_same_v<T, std::string>) {
      return Value(std::in_place_type<std::string>, text);
    } else if constexpr (std::is_same_v<T, bool>) {
      if (text == "true" || text == "1" || text == "yes" || text == "True" || text == "TRUE")
        return Value(true);
      if (text == "false" || text == "0" || text == "no" || text == "False" || text == "FALSE")
        return Value(false);
      bad(field, raw, where);
    } else {
      T v = 0;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || p != text.data() + text.size() || text.empty())
        bad(field, raw, where);
      return Value(std::in_place_type<T>, v);
    }
  });
}

std::string format_value(const Value& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return x;
        } else if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else {  // the shortest text that reads back as the same number
          char buf[32];
          const auto r = std::to_chars(buf, buf + sizeof buf, x);
          return std::string(buf, r.ptr);
        }
      },
      v);
}

double parse_duration(std::string_view raw, const std::string& option) {
  const std::string_view text = trim(raw);
  auto fail = [&]() -> double {
    throw UsageError(option + " '" + shown(raw) +
                     "': use seconds (90), units (90s, 15m, 2h, 1h30m) or [D-]HH:MM:SS");
  };
  if (text.empty()) fail();
  auto number = [&](std::string_view s) {
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty() || v < 0) fail();
    return v;
  };
  if (text.find(':') != std::string_view::npos || text.find('-') != std::string_view::npos) {
    double days = 0;
    std::string_view rest = text;
    if (auto dash = rest.find('-'); dash != std::string_view::npos) {
      days = number(rest.substr(0, dash));
      rest.remove_prefix(dash + 1);
    }
    std::vector<double> parts;
    while (true) {
      const auto colon = rest.find(':');
      parts.push_back(number(rest.substr(0, colon)));
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
    if (parts.size() > 3) fail();
    double secs = 0;
    // H:M:S, M:S; with days, Slurm reads D-H, D-H:M, D-H:M:S.
    if (days > 0 || text.find('-') != std::string_view::npos) {
      const double mult[] = {3600, 60, 1};
      for (std::size_t i = 0; i < parts.size(); ++i) secs += parts[i] * mult[i];
    } else {
      for (double p : parts) secs = secs * 60 + p;
    }
    return days * 86400 + secs;
  }
  double total = 0;
  std::size_t i = 0;
  bool any_unit = false;
  while (i < text.size()) {
    std::size_t j = i;
    while (j < text.size() && (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == '.'))
      ++j;
    const double v = number(text.substr(i, j - i));
    if (j == text.size()) {
      if (any_unit) fail();  // "1h30" is ambiguous
      return total + v;
    }
    const char unit = text[j];
    const double mult = unit == 's'   ? 1
                        : unit == 'm' ? 60
                        : unit == 'h' ? 3600
                        : unit == 'd' ? 86400
                                      : fail();
    total += v * mult;
    any_unit = true;
    i = j + 1;
  }
  return total;
}

}  // namespace mpibatch::detail
