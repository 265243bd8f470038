#include "mpibatch/task_key.hpp"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack: no allocation per key
#include <xxhash.h>

#include <array>
#include <cstring>

#include "mpibatch/error.hpp"

namespace mpibatch {

namespace {
void update(XXH3_state_t* state, const void* data, std::size_t size) {
  if (XXH3_128bits_update(state, data, size) != XXH_OK) {
    throw Error("XXH3_128bits_update failed");
  }
}
}  // namespace

TaskKey task_key(std::string_view job_name, std::int64_t job_version,
                 std::string_view input_bytes) {
  XXH3_state_t stack_state;
  XXH3_state_t* state = &stack_state;
  XXH3_INITSTATE(state);
  if (XXH3_128bits_reset(state) != XXH_OK) throw Error("XXH3_128bits_reset failed");
  const std::uint64_t name_size = job_name.size();
  update(state, &name_size, sizeof name_size);
  update(state, job_name.data(), job_name.size());
  update(state, &job_version, sizeof job_version);
  update(state, input_bytes.data(), input_bytes.size());
  const XXH128_hash_t h = XXH3_128bits_digest(state);
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
