// Prefetching a hash table's slot for a key ahead of its use.
#pragma once

namespace mpibatch::detail {

// table.prefetch(key) (absl) behind a call GCC may not look into. GCC 12's
// mod/ref analysis sees that absl's prefetch() changes no memory and drops
// the call, so a loop's prefetches silently vanish (checked in the
// disassembly); noipa keeps the call, and the prefetch inside it.
template <class Table, class Key>
[[gnu::noipa, gnu::flatten]] void prefetch(const Table& table, const Key& key) {
  table.prefetch(key);
}

}  // namespace mpibatch::detail
