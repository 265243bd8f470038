// What travels between the master and the workers, as Boost archives.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mpibatch/serialization.hpp"
#include "mpibatch/store.hpp"

namespace mpibatch::detail {

enum Tag : int { kTagBatch = 1, kTagStop = 2, kTagResults = 3, kTagBye = 4 };

struct TaskItem {
  std::uint64_t index = 0;  // position in the task stream
  Bytes input;
  template <class A>
  void serialize(A& a, unsigned) {
    a& index& input;
  }
};

struct Batch {
  std::vector<TaskItem> items;
  template <class A>
  void serialize(A& a, unsigned) {
    a& items;
  }
};

// A Value on the wire (Boost 1.74 has no std::variant support).
struct WireValue {
  std::uint8_t type = 0;  // Value's alternative index
  std::int64_t i = 0;
  double d = 0;
  std::string s;
  template <class A>
  void serialize(A& a, unsigned) {
    a& type& i& d& s;
  }
  static WireValue from(const Value& v);
  Value to() const;
};

struct ResultItem {
  std::uint64_t index = 0;
  bool ok = true;
  Bytes result;
  std::vector<WireValue> values;
  std::vector<WireValue> params;  // filled even when the task failed
  std::string error;
  double start_time = 0;
  double duration = 0;
  template <class A>
  void serialize(A& a, unsigned) {
    a& index& ok& result& values& params& error& start_time& duration;
  }
};

struct ResultBatch {
  double seconds = 0;  // wall time the worker spent computing the batch
  std::vector<ResultItem> items;
  template <class A>
  void serialize(A& a, unsigned) {
    a& seconds& items;
  }
};

}  // namespace mpibatch::detail
