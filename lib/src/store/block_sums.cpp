#include "store/block_sums.hpp"

#include <xxhash.h>

#include <algorithm>
#include <utility>

#include "mpibatch/error.hpp"

namespace mpibatch::detail {

void BlockSummer::add(const void* data, std::size_t bytes) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    if (block_.empty() && bytes >= kSumBlock) {  // a whole block: no copy
      sums_.push_back(XXH3_64bits(p, kSumBlock));
      p += kSumBlock;
      bytes -= kSumBlock;
      continue;
    }
    const std::size_t take = std::min(bytes, kSumBlock - block_.size());
    block_.append(p, take);
    p += take;
    bytes -= take;
    if (block_.size() == kSumBlock) {
      sums_.push_back(XXH3_64bits(block_.data(), block_.size()));
      block_.clear();
    }
  }
}

std::vector<std::uint64_t> BlockSummer::finish() {
  if (!block_.empty()) sums_.push_back(XXH3_64bits(block_.data(), block_.size()));
  block_.clear();
  return std::exchange(sums_, {});
}

CheckedArray::CheckedArray(std::string name, const char* base, std::size_t count, std::size_t elem,
                           std::vector<std::uint64_t> sums)
    : name_(std::move(name)), base_(base), count_(count), elem_(elem), sums_(std::move(sums)) {
  if (sums_.empty()) return;
  if (sums_.size() != sum_count(count * elem))
    throw StoreCorruptError(name_ + ": " + std::to_string(sums_.size()) + " block sums for " +
                            std::to_string(count * elem) + " bytes");
  ok_ = std::make_unique<std::atomic<std::uint8_t>[]>(sums_.size());
}

void CheckedArray::check_block(std::size_t b) const {
  const std::size_t bytes = count_ * elem_;
  const std::size_t at = b * kSumBlock, n = std::min(kSumBlock, bytes - at);
  if (XXH3_64bits(base_ + at, n) != sums_[b]) {
    throw StoreCorruptError(name_ + ": rows " + std::to_string(at / elem_) + " to " +
                            std::to_string((at + n) / elem_ - 1) +
                            " are damaged (they fail their checksum)");
  }
  ok_[b].store(1, std::memory_order_release);
}

}  // namespace mpibatch::detail
