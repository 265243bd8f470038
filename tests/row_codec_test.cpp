// The command's task inputs: byte for byte what Boost's archive of the first
// releases' Row gave, so the keys of stores made then still match.
#include "cli/row_codec.hpp"

#include <gtest/gtest.h>

#include <boost/serialization/split_member.hpp>
#include <random>

#include "mpibatch/task_key.hpp"

namespace {

using mpibatch::Bytes;
using mpibatch::Value;
using mpibatch::detail::decode_row;
using mpibatch::detail::encode_row;

// The reference: the public Row of releases up to format 1's keys.
struct ArchivedRow {
  std::vector<Value> values;
  template <class A>
  void save(A& a, unsigned) const {
    const std::uint64_t n = values.size();
    a << n;
    for (const Value& v : values) {
      const auto type = static_cast<std::uint8_t>(v.index());
      a << type;
      std::visit([&a](const auto& x) { a << x; }, v);
    }
  }
  template <class A>
  void load(A&, unsigned) {}
  BOOST_SERIALIZATION_SPLIT_MEMBER()
};

Bytes encoded(const std::vector<Value>& row) {
  Bytes out = "left over";
  encode_row(row, out);
  return out;
}

std::vector<Value> random_row(std::mt19937_64& rng) {
  std::vector<Value> row(rng() % 6);
  for (Value& v : row) {
    switch (rng() % 4) {
      case 0:
        v = static_cast<std::int64_t>(rng());
        break;
      case 1:
        v = std::ldexp(static_cast<double>(rng() % 100000) - 50000,
                       static_cast<int>(rng() % 40) - 20);
        break;
      case 2:
        v = rng() % 2 == 0;
        break;
      default:
        v = std::string(rng() % 40, static_cast<char>('a' + rng() % 26));
    }
  }
  return row;
}

TEST(RowCodec, BytesAreThoseOfTheBoostArchive) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const auto row = random_row(rng);
    ASSERT_EQ(encoded(row), mpibatch::to_bytes(ArchivedRow{row})) << "row " << i;
  }
}

TEST(RowCodec, DecodeGivesTheRowBackReusingTheVector) {
  std::mt19937_64 rng(11);
  std::vector<Value> back{Value(std::string(100, 'x')), Value(1.5)};
  for (int i = 0; i < 2000; ++i) {
    const auto row = random_row(rng);
    decode_row(encoded(row), back);
    ASSERT_EQ(back, row) << "row " << i;
  }
}

TEST(RowCodec, DamagedInputIsAnErrorNotACrash) {
  const Bytes good = encoded({Value(std::int64_t{3}), Value(std::string("abc")), Value(true)});
  std::vector<Value> row;
  for (std::size_t n = 0; n < good.size(); ++n)
    EXPECT_THROW(decode_row(good.substr(0, n), row), mpibatch::Error) << "truncated to " << n;
  EXPECT_THROW(decode_row(good + "x", row), mpibatch::Error);
  Bytes bad_type = good;
  bad_type[13] = 9;
  EXPECT_THROW(decode_row(bad_type, row), mpibatch::Error);
  Bytes huge_string = good;
  huge_string[23] = '\x7f';  // the string's length
  EXPECT_THROW(decode_row(huge_string, row), mpibatch::Error);
  Bytes huge_count = good;
  huge_count[12] = '\x7f';
  EXPECT_THROW(decode_row(huge_count, row), mpibatch::Error);
}

// Keys the command computed before its inputs were encoded by hand (and
// still must): a change here strands every stored result.
TEST(RowCodec, CommandKeysOfEarlierReleasesAreUnchanged) {
  auto key = [](const char* job, std::int64_t version, const std::vector<Value>& row) {
    return mpibatch::task_key(job, version, encoded(row)).hex();
  };
  EXPECT_EQ(key("sqrt", 1, {Value(3.0)}), "bd3e969601b2c7b244bf0a67075bd354");
  EXPECT_EQ(key("pi", 1, {Value(std::int64_t{7}), Value(std::int64_t{5})}),
            "025ef2d4231157079f8cb3dbf1c1a952");
  EXPECT_EQ(key("exec", 1, {Value(std::string("echo hi")), Value(false), Value(std::string())}),
            "1174f41e4551514b2f257bf8927676e3");
  EXPECT_EQ(
      key("mixed", 2,
          {Value(std::int64_t{-1}), Value(0.1), Value(true), Value(std::string("a b\xc3\xa9"))}),
      "e9e783a0798ee82d4264d8d08c972fc0");
  EXPECT_EQ(key("empty", 1, {}), "3d1ba7195f1e72dff7a2a03139426e02");
}

}  // namespace
