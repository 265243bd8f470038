#include "cli/row_codec.hpp"

#include <cstdint>
#include <cstring>
#include <string>

#include "core/value_types.hpp"
#include "mpibatch/error.hpp"

namespace mpibatch::detail {

namespace {

// Boost's object preamble for an untracked class of version 0.
constexpr std::size_t kPreamble = 5;

template <class T>
void put(Bytes& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <class T>
  T get() {
    T v;
    std::memcpy(&v, take(sizeof v), sizeof v);
    return v;
  }
  const char* take(std::size_t n) {
    if (in_.size() - at_ < n) {
      throw Error("task input of " + std::to_string(in_.size()) + " bytes is truncated at byte " +
                  std::to_string(at_));
    }
    const char* p = in_.data() + at_;
    at_ += n;
    return p;
  }
  bool done() const { return at_ == in_.size(); }

 private:
  std::string_view in_;
  std::size_t at_ = 0;
};

}  // namespace

void encode_row(const std::vector<Value>& row, Bytes& out) {
  out.assign(kPreamble, '\0');
  put(out, static_cast<std::uint64_t>(row.size()));
  for (const Value& v : row) {
    out.push_back(static_cast<char>(type_of(v)));
    std::visit(
        [&out](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>) {
            put(out, static_cast<std::uint64_t>(x.size()));
            out += x;
          } else if constexpr (std::is_same_v<T, bool>) {
            out.push_back(x ? 1 : 0);
          } else {
            put(out, x);
          }
        },
        v);
  }
}

void decode_row(std::string_view bytes, std::vector<Value>& row) {
  Reader r(bytes);
  if (std::string_view(r.take(kPreamble), kPreamble) != std::string_view("\0\0\0\0\0", kPreamble))
    throw Error("task input is not a row of values (unknown preamble)");
  const auto n = r.get<std::uint64_t>();
  if (n > bytes.size()) throw Error("task input claims " + std::to_string(n) + " values");
  row.resize(static_cast<std::size_t>(n));
  for (Value& v : row) {
    const auto tag = r.get<std::uint8_t>();
    if (tag >= std::variant_size_v<Value>) throw Error("task input has a value of unknown type");
    with_type(static_cast<FieldType>(tag), [&](auto type) {
      using T = typename decltype(type)::value;
      if constexpr (std::is_same_v<T, std::string>) {
        const auto size = r.get<std::uint64_t>();
        const char* p = r.take(size > bytes.size() ? bytes.size() + 1 : size);
        if (auto* s = std::get_if<std::string>(&v))
          s->assign(p, static_cast<std::size_t>(size));
        else
          v.emplace<std::string>(p, static_cast<std::size_t>(size));
      } else if constexpr (std::is_same_v<T, bool>) {
        const auto b = r.get<std::uint8_t>();
        if (b > 1) throw Error("task input has a bool of value " + std::to_string(b));
        v.emplace<bool>(b == 1);
      } else {
        v.emplace<T>(r.get<T>());
      }
    });
  }
  if (!r.done()) throw Error("task input has bytes after its last value");
}

void encode_row_prefix(std::string_view bytes, std::size_t n, Bytes& out) {
  thread_local std::vector<Value> row;
  decode_row(bytes, row);
  if (row.size() > n) row.resize(n);
  encode_row(row, out);
}

}  // namespace mpibatch::detail
