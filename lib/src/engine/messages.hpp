// What travels between the master and the workers, as Boost archives. Both
// directions are columnar, so a batch of any size is a few memcpy's to
// serialize, with no per-task object for Boost to track.
#pragma once

#include <boost/serialization/binary_object.hpp>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/value_types.hpp"
#include "mpibatch/serialization.hpp"
#include "mpibatch/store.hpp"
#include "mpibatch/store_dispatch.hpp"

namespace mpibatch::detail {

enum Tag : int { kTagBatch = 1, kTagStop = 2, kTagResults = 3, kTagBye = 4 };

// A vector of trivially copyable values as its length and raw bytes.
template <class A, class T>
void serialize_pod(A& a, std::vector<T>& v) {
  static_assert(std::is_trivially_copyable_v<T>);
  std::uint64_t n = v.size();
  a& n;
  if constexpr (A::is_loading::value) v.resize(n);
  if (n > 0) {
    auto bytes = boost::serialization::make_binary_object(v.data(), n * sizeof(T));
    a& bytes;
  }
}

template <class A>
void serialize_columns(A& a, std::vector<ValueColumn>& columns) {
  std::uint64_t n = columns.size();
  a& n;
  if constexpr (A::is_loading::value) columns.resize(n);
  for (auto& c : columns) {
    std::uint8_t type = static_cast<std::uint8_t>(c.index());
    a& type;
    if constexpr (A::is_loading::value) c = empty_column(static_cast<FieldType>(type));
    std::visit(
        [&a](auto& v) {
          if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::vector<std::string>>)
            a& v;
          else
            serialize_pod(a, v);
        },
        c);
  }
}

// Tasks for one worker: their serialized inputs, one after another.
struct Batch {
  Bytes inputs;
  std::vector<std::uint32_t> sizes;
  template <class A>
  void serialize(A& a, unsigned) {
    a& inputs;
    serialize_pod(a, sizes);
  }
};

// Every member of RecordBatch, once, with whether it travels from a worker
// (the master fills the others). A member added to RecordBatch but not here
// fails the static_assert below, so none is silently left unsent.
inline constexpr auto kRecordBatchMembers = std::make_tuple(
    std::pair{&RecordBatch::job, false}, std::pair{&RecordBatch::job_version, false},
    std::pair{&RecordBatch::run, false}, std::pair{&RecordBatch::keys, false},
    std::pair{&RecordBatch::status, true}, std::pair{&RecordBatch::rank, false},
    std::pair{&RecordBatch::start_time, true}, std::pair{&RecordBatch::duration, true},
    std::pair{&RecordBatch::results, true}, std::pair{&RecordBatch::result_sizes, true},
    std::pair{&RecordBatch::errors, true}, std::pair{&RecordBatch::error_sizes, true},
    std::pair{&RecordBatch::values, true}, std::pair{&RecordBatch::params, true});

template <class T>
struct MemberType;
template <class T>
struct MemberType<T RecordBatch::*> {
  using type = T;
};

constexpr std::size_t listed_bytes() {
  return std::apply(
      [](auto... m) {
        return (sizeof(typename MemberType<decltype(m.first)>::type) + ... + std::size_t{0});
      },
      kRecordBatchMembers);
}
static_assert(listed_bytes() == sizeof(RecordBatch),
              "a RecordBatch member is missing from kRecordBatchMembers");

template <class A, class T>
void serialize_member(A& a, T& v) {
  if constexpr (std::is_same_v<T, std::string>)
    a& v;
  else if constexpr (std::is_same_v<T, std::vector<ValueColumn>>)
    serialize_columns(a, v);
  else if constexpr (std::is_trivially_copyable_v<T>)
    a& v;
  else
    serialize_pod(a, v);
}

// A batch's results, in the batch's order. The worker fills what it knows;
// the master adds job, run, keys and rank and appends them to the store.
struct ResultBatch {
  double seconds = 0;  // wall time the worker spent computing the batch
  RecordBatch records;
  // Rows whose task threw InterruptedError (recorded as failed rows here):
  // the master stores them only when the run is not stopping.
  std::vector<std::uint32_t> interrupted;
  template <class A>
  void serialize(A& a, unsigned) {
    a& seconds;
    serialize_pod(a, interrupted);
    std::apply(
        [&](auto... m) { ((m.second ? serialize_member(a, records.*(m.first)) : void()), ...); },
        kRecordBatchMembers);
  }
};

}  // namespace mpibatch::detail
