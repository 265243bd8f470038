// Memory for the master's large random-access tables (the key index), in
// transparent huge pages where the kernel offers them on request
// (/sys/kernel/mm/transparent_hugepage/enabled: madvise): a first touch
// then maps 2 MiB, not 4 KiB, so filling a table of hundreds of MiB takes
// hundreds of page faults, not hundreds of thousands, and its random reads
// miss the TLB far less.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

namespace mpibatch::detail {

// Asks for huge pages on the whole 2 MiB pages inside [p, p + bytes).
inline void advise_huge_pages(void* p, std::size_t bytes) {
  constexpr std::size_t kHuge = std::size_t{2} << 20;
  auto begin = (reinterpret_cast<std::uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

// An allocator whose blocks of 4 MiB or more are mapped on their own and
// advised to use huge pages (a hint: without them, ordinary pages).
template <class T>
struct HugePageAllocator {
  using value_type = T;
  static constexpr std::size_t kLarge = std::size_t{4} << 20;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) {}  // NOLINT: converting, as allocators do

  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kLarge) return std::allocator<T>().allocate(n);
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    advise_huge_pages(p, bytes);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kLarge) {
      std::allocator<T>().deallocate(p, n);
    } else {
      ::munmap(p, bytes);
    }
  }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const {
    return true;
  }
};

}  // namespace mpibatch::detail
