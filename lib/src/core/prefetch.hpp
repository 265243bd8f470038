// Prefetching a hash table's slot for a key ahead of its use.
#pragma once

namespace mpibatch::detail {

// table.prefetch(key) (absl) behind a call GCC may not look into. GCC 12's
// mod/ref analysis sees that absl's prefetch() changes no memory and drops
// the call, so a loop's prefetches silently vanish (checked in the
// disassembly); noipa keeps the call, and the prefetch inside it.
// Clang has no noipa (and would warn): noinline keeps the call's shape there.
#if defined(__clang__)
#define MPIBATCH_NOIPA gnu::noinline
#else
#define MPIBATCH_NOIPA gnu::noipa
#endif
template <class Table, class Key>
[[MPIBATCH_NOIPA, gnu::flatten]] void prefetch(const Table& table, const Key& key) {
  table.prefetch(key);
}

}  // namespace mpibatch::detail
