// Bytes from and to any type with a Boost.Serialization serialize().
//
// Archives are binary and written without Boost's archive header, so the
// bytes of a value depend only on the value (and the platform), never on the
// Boost version: they are what task keys hash and what the store keeps.
#pragma once

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/map.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/utility.hpp>
#include <boost/serialization/vector.hpp>
#include <cstring>
#include <streambuf>
#include <string>
#include <string_view>
#include <type_traits>

#include "mpibatch/error.hpp"

namespace mpibatch {

// Opaque serialized bytes. std::string is used as the byte container.
using Bytes = std::string;

namespace detail {

// Stream buffers straight over a string, so no stringstream (and no locale)
// is built per call: serialization is on the per-task hot path.
class StringSink : public std::streambuf {
 public:
  explicit StringSink(std::string& out) : out_(out) {}

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    out_.append(s, static_cast<std::size_t>(n));
    return n;
  }
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof()))
      out_.push_back(traits_type::to_char_type(c));
    return traits_type::not_eof(c);
  }

 private:
  std::string& out_;
};

class StringSource : public std::streambuf {
 public:
  explicit StringSource(std::string_view in) {
    char* p = const_cast<char*>(in.data());  // read-only: the get area is never written
    setg(p, p, p + in.size());
  }
};

inline constexpr unsigned kArchiveFlags = boost::archive::no_header | boost::archive::no_codecvt;

}  // namespace detail

// Serializes value. Thread-safe for distinct values. Throws Error when Boost
// reports an archive error.
template <class T>
Bytes to_bytes(const T& value) {
  if constexpr (std::is_arithmetic_v<T>) {
    // What a binary archive writes for a number, without building one.
    return Bytes(reinterpret_cast<const char*>(&value), sizeof value);
  }
  Bytes out;
  detail::StringSink sink(out);
  try {
    boost::archive::binary_oarchive archive(sink, detail::kArchiveFlags);
    archive << value;
  } catch (const boost::archive::archive_exception& e) {
    throw Error(std::string("serialization failed: ") + e.what());
  }
  return out;
}

// Deserializes bytes made by to_bytes<T>. Throws Error when the bytes are
// truncated or not an archive of T (as far as Boost can tell).
template <class T>
T from_bytes(std::string_view bytes) {
  T value{};
  if constexpr (std::is_arithmetic_v<T>) {
    if (bytes.size() != sizeof value) {
      throw Error("deserialization failed: " + std::to_string(bytes.size()) + " bytes for a " +
                  std::to_string(sizeof value) + "-byte number");
    }
    std::memcpy(&value, bytes.data(), sizeof value);
    return value;
  }
  detail::StringSource source(bytes);
  try {
    boost::archive::binary_iarchive archive(source, detail::kArchiveFlags);
    archive >> value;
  } catch (const boost::archive::archive_exception& e) {
    throw Error(std::string("deserialization failed: ") + e.what());
  }
  return value;
}

}  // namespace mpibatch
