// The identity of a task: a 128-bit XXH3 hash of (job name, job version,
// input bytes). The same three always give the same key, in any process on
// the same platform; changing any of them gives a new key, which is how a new
// job version invalidates cached results.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "mpibatch/export.hpp"

namespace mpibatch {

struct MPIBATCH_EXPORT TaskKey {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;

  friend auto operator<=>(const TaskKey&, const TaskKey&) = default;

  // 32 lowercase hex digits, hi first.
  std::string hex() const;
  // Parses 32 hex digits; throws UsageError naming the text otherwise.
  static TaskKey from_hex(std::string_view text);
};

// Pure and thread-safe. XXH3-128 of: the name's length (u64), the name, the
// version (i64), the input bytes; native (little-endian) byte order. The
// name and version are length-framed before the input so that no two
// different triples hash the same bytes. Stable across releases (tested).
MPIBATCH_EXPORT TaskKey task_key(std::string_view job_name, std::int64_t job_version,
                                 std::string_view input_bytes);

// Hash functor for containers: keys are XXH3 output, already uniform.
struct TaskKeyHash {
  std::size_t operator()(const TaskKey& k) const noexcept {
    return static_cast<std::size_t>(k.lo ^ k.hi);
  }
};

}  // namespace mpibatch
