// What travels between the master and the workers, as Boost archives. Both
// directions are columnar, so a batch of any size is a few memcpy's to
// serialize, with no per-task object for Boost to track.
#pragma once

#include <algorithm>
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
// Loading grows it 64 KiB at a time as the bytes come, so a damaged length
// ends in an archive error at the message's end, never in an allocation of
// what it claims (the bytes are the same as one binary object's).
template <class A, class T>
void serialize_pod(A& a, std::vector<T>& v) {
  static_assert(std::is_trivially_copyable_v<T>);
  std::uint64_t n = v.size();
  a& n;
  constexpr std::uint64_t kStep = (std::uint64_t{1} << 16) / sizeof(T) + 1;
  if constexpr (A::is_loading::value) v.clear();
  for (std::uint64_t at = 0; at < n;) {
    const std::uint64_t m = A::is_loading::value ? std::min(n - at, kStep) : n;
    if constexpr (A::is_loading::value) v.resize(at + m);
    auto bytes = boost::serialization::make_binary_object(v.data() + at, m * sizeof(T));
    a& bytes;
    at += m;
  }
}

// A string as Boost writes one (its length, then its bytes), loaded as a
// vector is above: Boost's own load sizes the string to the length first.
template <class A>
void serialize_bytes(A& a, std::string& s) {
  std::uint64_t n = s.size();
  a& n;
  constexpr std::uint64_t kStep = std::uint64_t{1} << 16;
  if constexpr (A::is_loading::value) s.clear();
  for (std::uint64_t at = 0; at < n;) {
    const std::uint64_t m = A::is_loading::value ? std::min(n - at, kStep) : n;
    if constexpr (A::is_loading::value) s.resize(at + m);
    auto bytes = boost::serialization::make_binary_object(s.data() + at, m);
    a& bytes;
    at += m;
  }
}

// A string column: its length, then each string (no reserve of the length).
template <class A>
void serialize_strings(A& a, std::vector<std::string>& v) {
  std::uint64_t n = v.size();
  a& n;
  if constexpr (A::is_loading::value) {
    v.clear();
    for (std::uint64_t i = 0; i < n; ++i) serialize_bytes(a, v.emplace_back());
  } else {
    for (auto& s : v) serialize_bytes(a, s);
  }
}

// Columns, each its type byte and its values; loaded one by one (no resize
// to the stated count).
template <class A>
void serialize_columns(A& a, std::vector<ValueColumn>& columns) {
  std::uint64_t n = columns.size();
  a& n;
  if constexpr (A::is_loading::value) columns.clear();
  for (std::uint64_t i = 0; i < n; ++i) {
    if constexpr (A::is_loading::value) columns.emplace_back();
    ValueColumn& c = columns[i];
    std::uint8_t type = static_cast<std::uint8_t>(c.index());
    a& type;
    if constexpr (A::is_loading::value) c = empty_column(static_cast<FieldType>(type));
    std::visit(
        [&a](auto& v) {
          if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::vector<std::string>>)
            serialize_strings(a, v);
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
    serialize_bytes(a, inputs);
    serialize_pod(a, sizes);
  }
};

// Why batch's sizes do not cut its inputs into tasks ("" when they do).
inline std::string misfit(const Batch& batch) {
  std::uint64_t total = 0;
  for (const auto n : batch.sizes) total += n;
  if (total == batch.inputs.size()) return {};
  return "a batch's " + std::to_string(batch.sizes.size()) + " task sizes add up to " +
         std::to_string(total) + " bytes, not its " + std::to_string(batch.inputs.size());
}

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
    serialize_bytes(a, v);
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

// Why rb cannot be a worker's answer to a batch of `tasks` tasks of job
// ("" when it can): a column of another length or type, sizes that do not
// add up, a row number out of range. The master checks what it receives
// before it uses any of it.
inline std::string misfit(const ResultBatch& rb, std::size_t tasks, const JobInfo& job) {
  const RecordBatch& b = rb.records;
  std::string why;
  auto rows = [&](const char* column, std::size_t n) {
    if (why.empty() && n != tasks)
      why = std::string("column ") + column + " has " + std::to_string(n) + " rows for " +
            std::to_string(tasks) + " tasks";
  };
  auto bytes = [&](const char* column, const std::vector<std::uint32_t>& sizes, std::size_t n) {
    std::uint64_t total = 0;
    for (const auto s : sizes) total += s;
    if (why.empty() && total != n)
      why = std::string(column) + " sizes add up to " + std::to_string(total) + " bytes, not " +
            std::to_string(n);
  };
  rows("status", b.status.size());
  rows("start_time", b.start_time.size());
  rows("duration", b.duration.size());
  rows("result_sizes", b.result_sizes.size());
  rows("error_sizes", b.error_sizes.size());
  bytes("result", b.result_sizes, b.results.size());
  bytes("error", b.error_sizes, b.errors.size());
  for (const auto& [kind, fields, columns] : {std::tuple{"result", &job.results, &b.values},
                                              std::tuple{"param", &job.params, &b.params}}) {
    if (why.empty()) why = detail::misfit(*fields, *columns, kind);
    for (const auto& c : *columns)
      rows(kind, std::visit([](const auto& v) { return v.size(); }, c));
  }
  for (const auto i : rb.interrupted)
    if (why.empty() && i >= tasks) why = "interrupted row " + std::to_string(i) + " out of range";
  for (const Status s : b.status)
    if (why.empty() && s != Status::ok && s != Status::failed)
      why = "a status of " + std::to_string(static_cast<int>(s));
  return why;
}

}  // namespace mpibatch::detail
