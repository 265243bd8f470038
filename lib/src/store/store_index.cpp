// Store::Impl: the key index, claims, and reading records where the index points.
#include <algorithm>

#include "core/prefetch.hpp"
#include "store/store_impl.hpp"

namespace mpibatch {

using namespace detail;

void Store::Impl::index_mem(const TaskKey& key, bool failed, std::size_t row) {
  const Loc loc = Loc::make(mem_table[active], 0, failed, row);
  auto [it, inserted] = index.try_emplace(key, loc);
  if (inserted) return;
  Loc& v = it->second;
  if (v.table() == kReleased) {
    --phantoms;
    v = loc;
  } else if (v.table() == kClaimed) {  // appended without its claim: what the claim replaces
    ClaimRec& c = claims[v.row()];
    if (c.had_old)
      supersede(c.old);
    else
      --phantoms;
    c.old = loc;
    c.had_old = true;
  } else {
    supersede(v);
    v = loc;
  }
}

void Store::Impl::supersede(Loc old) {
  if (old.table() == mem_table[active]) mem().entries[old.row()].superseded = true;
}

const Loc* Store::Impl::visible(const Loc& v) const {
  if (v.table() == kReleased) return nullptr;
  if (v.table() != kClaimed) return &v;
  const ClaimRec& c = claims[v.row()];
  return c.had_old ? &c.old : nullptr;
}

void Store::Impl::refresh_claims() {
  if (index.capacity() == claims_capacity) return;
  for (ClaimRec& c : claims)
    if (c.live) c.slot = &*index.find(c.key);
  claims_capacity = index.capacity();
}

void Store::Impl::claim(std::span<const TaskKey> keys, std::span<Lookup> out, std::span<Claim> ids,
                        bool claim_failed) {
  require_writer("claim keys");
  if (out.size() != keys.size() || ids.size() != keys.size())
    throw UsageError("claim: output sizes differ from the key count");
  refresh_claims();
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i + kPrefetch < keys.size()) detail::prefetch(index, keys[i + kPrefetch]);
    // A new key holds a kReleased marker until its claim is made: a
    // throw in between leaves no location that points at a record.
    auto [it, inserted] = index.try_emplace(keys[i], Loc::make(kReleased, 0, false, 0));
    Loc& v = it->second;
    ClaimRec c{keys[i], &*it, Loc{}, false, true};
    if (inserted) {
      ++phantoms;
    } else if (v.table() == kClaimed) {
      out[i] = Lookup::claimed;
      continue;
    } else if (v.table() != kReleased) {
      if (!v.failed() || !claim_failed) {
        out[i] = v.failed() ? Lookup::failed : Lookup::ok;
        continue;
      }
      c.old = v;
      c.had_old = true;
    }
    Claim id = 0;
    if (free_claims.empty()) {
      if (claims.size() >= kMaxRows) throw UsageError("claim: too many unsettled claims");
      id = static_cast<Claim>(claims.size());
      claims.push_back(c);
    } else {
      id = free_claims.back();
      free_claims.pop_back();
      claims[id] = c;
    }
    v = Loc::make(kClaimed, 0, false, id);
    ids[i] = id;
    out[i] = Lookup::missing;
  }
  refresh_claims();  // an insert above may have grown the index
}

void Store::Impl::check_claims(std::span<const TaskKey> keys, std::span<const Claim> ids) {
  if (ids.size() != keys.size()) {
    throw UsageError("append: " + std::to_string(ids.size()) + " claims for " +
                     std::to_string(keys.size()) + " records");
  }
  std::size_t i = 0;
  for (; i < ids.size(); ++i) {
    if (ids[i] >= claims.size() || !claims[ids[i]].live || claims[ids[i]].key != keys[i]) break;
    claims[ids[i]].live = false;  // taken, so that a repeated id fails
  }
  for (std::size_t j = 0; j < i; ++j) claims[ids[j]].live = true;
  if (i < ids.size()) {
    throw UsageError("append: record " + std::to_string(i) + " names claim " +
                     std::to_string(ids[i]) +
                     ", which is not an outstanding claim of its key (or is named twice)");
  }
}

void Store::Impl::settle(Claim id, bool failed, std::size_t row) {
  ClaimRec& c = claims[id];
  if (c.had_old)
    supersede(c.old);
  else
    --phantoms;
  c.slot->second = Loc::make(mem_table[active], 0, failed, row);
  c.live = false;
  free_claims.push_back(id);
}

void Store::Impl::release_claims() {
  refresh_claims();
  for (const ClaimRec& c : claims)
    if (c.live) c.slot->second = c.had_old ? c.old : Loc::make(kReleased, 0, false, 0);
  claims.clear();
  free_claims.clear();
}

Place Store::Impl::place(Loc loc) const {
  const std::uint32_t t = loc.table();
  for (int slot = 0; slot < 2; ++slot)
    if (mem_table[slot] == t) return Place{slot, t, 0, loc.row()};
  if (const Remap* m = remaps[t].get()) {
    const std::uint32_t pos = m->pos[loc.row()];
    const auto k = static_cast<std::size_t>(
        std::upper_bound(m->first.begin(), m->first.end(), pos) - m->first.begin() - 1);
    return Place{-1, t, m->group[k], pos - m->first[k]};
  }
  return Place{-1, t, loc.group(), loc.row()};
}

std::vector<std::pair<Place, Loc>> Store::Impl::stored_in_order() const {
  std::vector<std::pair<std::uint64_t, Loc>> order;
  order.reserve(index.size() - phantoms);
  for (const auto& [key, value] : index) {
    if (const Loc* loc = visible(value)) {
      const Place p = place(*loc);
      order.emplace_back((std::uint64_t{p.table} << 48) | (std::uint64_t{p.group} << 32) | p.row,
                         *loc);
    }
  }
  std::sort(order.begin(), order.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::pair<Place, Loc>> out;
  out.reserve(order.size());
  for (const auto& [at, loc] : order) out.emplace_back(place(loc), loc);
  return out;
}

std::vector<Record> Store::Impl::fetch(const std::vector<Loc>& locs) const {
  std::vector<Record> out(locs.size());
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::vector<std::size_t>> by_group;
  std::vector<hsize_t> table_rows(locs.size());
  for (std::size_t i = 0; i < locs.size(); ++i) {
    const Place p = place(locs[i]);
    if (p.mem >= 0) {
      out[i] = mems[static_cast<std::size_t>(p.mem)].get(p.row);
    } else {
      table_rows[i] = p.row;
      by_group[{p.table, p.group}].push_back(i);
    }
  }
  for (const auto& [tg, idx] : by_group) {
    std::vector<hsize_t> rows;
    rows.reserve(idx.size());
    for (std::size_t i : idx) rows.push_back(table_rows[i]);
    auto recs = tables[tg.first]->read_rows(tg.second, rows);
    for (std::size_t j = 0; j < idx.size(); ++j) out[idx[j]] = std::move(recs[j]);
  }
  return out;
}

}  // namespace mpibatch
