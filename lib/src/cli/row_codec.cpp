#include "cli/row_codec.hpp"

#include <cstdint>
#include <cstring>
#include <string>

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
    out.push_back(static_cast<char>(v.index()));
    switch (v.index()) {
      case 0:
        put(out, std::get<std::int64_t>(v));
        break;
      case 1:
        put(out, std::get<double>(v));
        break;
      case 2:
        out.push_back(std::get<bool>(v) ? 1 : 0);
        break;
      default: {
        const std::string& s = std::get<std::string>(v);
        put(out, static_cast<std::uint64_t>(s.size()));
        out += s;
      }
    }
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
    switch (r.get<std::uint8_t>()) {
      case 0:
        v.emplace<std::int64_t>(r.get<std::int64_t>());
        break;
      case 1:
        v.emplace<double>(r.get<double>());
        break;
      case 2: {
        const auto b = r.get<std::uint8_t>();
        if (b > 1) throw Error("task input has a bool of value " + std::to_string(b));
        v.emplace<bool>(b == 1);
        break;
      }
      case 3: {
        const auto size = r.get<std::uint64_t>();
        const char* p = r.take(size > bytes.size() ? bytes.size() + 1 : size);
        if (auto* s = std::get_if<std::string>(&v))
          s->assign(p, static_cast<std::size_t>(size));
        else
          v.emplace<std::string>(p, static_cast<std::size_t>(size));
        break;
      }
      default:
        throw Error("task input has a value of unknown type");
    }
  }
  if (!r.done()) throw Error("task input has bytes after its last value");
}

}  // namespace mpibatch::detail
