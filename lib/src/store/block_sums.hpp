// Checksums of contiguous data that readers use in place (mapped): HDF5's
// fletcher32 filter needs chunks, which cannot be mapped, so each block of
// kSumBlock bytes gets an XXH3-64 of its own, checked when first read.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mpibatch::detail {

inline constexpr std::size_t kSumBlock = std::size_t{1} << 16;

// The sums of a byte stream's blocks, fed in order. Not thread-safe.
class BlockSummer {
 public:
  void add(const void* data, std::size_t bytes);
  // The sums so far, the last (partial) block's included; resets.
  std::vector<std::uint64_t> finish();

 private:
  std::vector<std::uint64_t> sums_;
  std::string block_;
};

// How many sums bytes of data have.
inline std::size_t sum_count(std::size_t bytes) {
  return (bytes + kSumBlock - 1) / kSumBlock;
}

// An array in memory (mapped or read) and its block sums, checked lazily:
// each block once, on its first touch. touch() may be called from several
// threads at once (a block may then be checked twice). Throws
// StoreCorruptError naming name and the block's elements when one fails.
class CheckedArray {
 public:
  CheckedArray() = default;
  // sums empty: not checked (a table written before there were sums).
  CheckedArray(std::string name, const char* base, std::size_t count, std::size_t elem,
               std::vector<std::uint64_t> sums);
  void touch(std::size_t first, std::size_t count) const {
    if (sums_.empty() || count == 0) return;
    const std::size_t last = ((first + count) * elem_ - 1) / kSumBlock;
    for (std::size_t b = first * elem_ / kSumBlock; b <= last; ++b)
      if (ok_[b].load(std::memory_order_acquire) == 0) check_block(b);
  }
  void touch_all() const { touch(0, count_); }

 private:
  void check_block(std::size_t b) const;
  std::string name_;
  const char* base_ = nullptr;
  std::size_t count_ = 0, elem_ = 1;
  std::vector<std::uint64_t> sums_;
  std::unique_ptr<std::atomic<std::uint8_t>[]> ok_;
};

}  // namespace mpibatch::detail
