#include "mpibatch/task_key.hpp"

#include <xxhash.h>

#include <array>
#include <cstring>
#include <string>

#include "mpibatch/error.hpp"

namespace mpibatch {

// XXH3-128 of u64 name length, name, i64 version, input (native byte order).
// Hashed in one shot over a reused buffer: the streaming API gives the same
// key but costs several times more for the small inputs most tasks have.
TaskKey task_key(std::string_view job_name, std::int64_t job_version,
                 std::string_view input_bytes) {
  thread_local std::string buffer;
  const std::uint64_t name_size = job_name.size();
  buffer.resize(sizeof name_size + job_name.size() + sizeof job_version + input_bytes.size());
  char* p = buffer.data();
  std::memcpy(p, &name_size, sizeof name_size);
  p += sizeof name_size;
  if (!job_name.empty()) std::memcpy(p, job_name.data(), job_name.size());
  p += job_name.size();
  std::memcpy(p, &job_version, sizeof job_version);
  p += sizeof job_version;
  if (!input_bytes.empty()) std::memcpy(p, input_bytes.data(), input_bytes.size());
  const XXH128_hash_t h = XXH3_128bits(buffer.data(), buffer.size());
  return TaskKey{h.high64, h.low64};
}

std::string TaskKey::hex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[static_cast<std::size_t>(15 - i)] = kDigits[(hi >> (4 * i)) & 0xF];
    out[static_cast<std::size_t>(31 - i)] = kDigits[(lo >> (4 * i)) & 0xF];
  }
  return out;
}

TaskKey TaskKey::from_hex(std::string_view text) {
  if (text.size() != 32) {
    throw UsageError("task key '" + std::string(text) + "': expected 32 hex digits");
  }
  TaskKey key;
  for (std::size_t i = 0; i < 32; ++i) {
    const char c = text[i];
    std::uint64_t v = 0;
    if (c >= '0' && c <= '9') {
      v = static_cast<std::uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v = static_cast<std::uint64_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      v = static_cast<std::uint64_t>(c - 'A' + 10);
    } else {
      throw UsageError("task key '" + std::string(text) + "': '" + std::string(1, c) +
                       "' is not a hex digit");
    }
    std::uint64_t& half = i < 16 ? key.hi : key.lo;
    half = (half << 4) | v;
  }
  return key;
}

}  // namespace mpibatch
