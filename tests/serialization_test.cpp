#include "mpibatch/serialization.hpp"

#include <gtest/gtest.h>

#include <boost/archive/binary_oarchive.hpp>
#include <map>
#include <string>
#include <vector>

namespace {

struct Point {
  int x = 0;
  double y = 0;
  std::string name;
  std::vector<int> tags;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar& x& y& name& tags;
  }
  bool operator==(const Point&) const = default;
};

template <class T>
void expect_round_trip(const T& v) {
  EXPECT_EQ(mpibatch::from_bytes<T>(mpibatch::to_bytes(v)), v);
}

TEST(Serialization, RoundTripsNumbersStringsContainersAndStructs) {
  expect_round_trip(42);
  expect_round_trip(-7.25);
  expect_round_trip(std::uint64_t{1} << 63);
  expect_round_trip(std::string("h\0llo \xe2\x9c\x93", 10));
  expect_round_trip(std::vector<double>{1.5, -2.0, 1e300});
  expect_round_trip(std::map<std::string, int>{{"a", 1}, {"b", 2}});
  expect_round_trip(Point{3, 4.5, "p", {1, 2, 3}});
  expect_round_trip(std::vector<Point>{{1, 2, "a", {}}, {5, 6, "b", {7}}});
}

TEST(Serialization, BytesDependOnlyOnTheValue) {
  EXPECT_EQ(mpibatch::to_bytes(Point{1, 2, "x", {3}}), mpibatch::to_bytes(Point{1, 2, "x", {3}}));
  EXPECT_NE(mpibatch::to_bytes(Point{1, 2, "x", {3}}), mpibatch::to_bytes(Point{1, 2, "x", {4}}));
  // No archive header: an int is its 4 bytes.
  EXPECT_EQ(mpibatch::to_bytes(7).size(), sizeof(int));
}

TEST(Serialization, TruncatedBytesThrowError) {
  const auto bytes = mpibatch::to_bytes(std::vector<double>{1, 2, 3});
  EXPECT_THROW(mpibatch::from_bytes<std::vector<double>>(bytes.substr(0, 5)), mpibatch::Error);
}

using namespace mpibatch;

TEST(Serialization, NumberFastPathMatchesBoostArchive) {
  for (double v : {0.0, -1.5, 1e300}) {
    std::string viaBoost;
    {
      detail::StringSink sink(viaBoost);
      boost::archive::binary_oarchive a(sink, detail::kArchiveFlags);
      a << v;
    }
    EXPECT_EQ(to_bytes(v), viaBoost);
    EXPECT_EQ(from_bytes<double>(to_bytes(v)), v);
  }
  EXPECT_THROW(from_bytes<double>("abc"), Error);
}

}  // namespace
