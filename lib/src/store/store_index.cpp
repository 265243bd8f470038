// Store::Impl: the key index, claims, and reading records where the index points.
#include <absl/container/flat_hash_set.h>

#include <algorithm>

#include "core/prefetch.hpp"
#include "store/store_impl.hpp"

namespace mpibatch {

using namespace detail;

void Store::Impl::index_mem(const TaskKey& key, bool failed, std::size_t row) {
  const Loc loc = Loc::make(mem_table[active], 0, failed, row);
  auto [it, inserted] = index.try_emplace(key, loc);
  if (inserted) {
    if (probe_rows > 0 && in_tables(key, probe_end)) mem().replacing.push_back(key);
    return;
  }
  Loc& v = it->second;
  if (v.table() == kReleased) {  // claimed and released: no record anywhere
    v = loc;
  } else if (v.table() == kClaimed) {  // appended without its claim: what the claim replaces
    ClaimRec& c = claims[v.row()];
    if (c.had_old) replaced(key, c.old);
    c.old = loc;
    c.had_old = true;
  } else {
    replaced(key, v);
    v = loc;
  }
}

void Store::Impl::replaced(const TaskKey& key, Loc old) {
  if (old.table() == mem_table[active]) {
    detail::MemTable& m = mem();
    if (!m.entries[old.row()].superseded) ++m.superseded;
    m.entries[old.row()].superseded = true;
  } else {
    mem().replacing.push_back(key);
  }
}

std::optional<Store::Impl::TableFind> Store::Impl::in_tables(const TaskKey& key,
                                                             std::size_t end) const {
  for (std::size_t t = end; t-- > 0;)
    if (auto hit = tables[t]->key_index().find(key))
      return TableFind{static_cast<std::uint32_t>(t), *hit};
  return std::nullopt;
}

void Store::Impl::locate_in_tables(std::span<const TaskKey> keys, std::vector<std::uint32_t>& todo,
                                   std::span<std::optional<Loc>> out) const {
  auto probe = [&](std::size_t t, std::vector<std::uint32_t>& from,
                   std::vector<std::uint32_t>& left, bool sure_only) {
    const detail::KeyIndex& x = tables[t]->key_index();
    left.clear();
    if (x.size() == 0) {
      left.swap(from);
      return;
    }
    // Two stages ahead: the bucket's entry, then the keys it points at.
    for (std::size_t j = 0; j < from.size(); ++j) {
      if (j + 2 * kPrefetch < from.size()) x.prefetch(keys[from[j + 2 * kPrefetch]], 0);
      if (j + kPrefetch < from.size()) x.prefetch(keys[from[j + kPrefetch]], 1);
      const TaskKey& key = keys[from[j]];
      const auto hit = x.find(key);
      if (hit && !(sure_only && replaced_keys.contains(key))) {
        out[from[j]] = Loc::make(static_cast<std::uint32_t>(t), hit->group, hit->failed, hit->row);
        hint_table = t;
      } else {
        left.push_back(from[j]);
        if (!hit) ++table_misses;
      }
    }
  };
  std::vector<std::uint32_t> left;
  // First the table that held the last key found: a run's tasks come in the
  // order of an earlier run's, so most keys are where the one before was. A
  // key in one table only (none replaced it) is found in any order; a
  // replaced one only newest first.
  if (hint_table < probe_end && !todo.empty()) {
    probe(hint_table, todo, left, true);
    todo.swap(left);
  }
  for (std::size_t t = probe_end; t-- > 0 && !todo.empty();) {
    probe(t, todo, left, false);
    todo.swap(left);
  }
}

void Store::Impl::load_tables() {
  index.reserve(index.size() + probe_rows);
  for (std::size_t t = 0; t < probe_end; ++t) {  // oldest first: a newer table's record wins
    const auto table = static_cast<std::uint32_t>(t);
    tables[t]->key_index().for_each([&](const TaskKey& key, detail::TableHit hit) {
      const Loc loc = Loc::make(table, hit.group, hit.failed, hit.row);
      auto [it, inserted] = index.try_emplace(key, loc);
      // Values at or past probe_end (the writer's own, claims) are newer.
      if (!inserted && it->second.table() < probe_end && it->second.table() < table)
        it->second = loc;
    });
  }
  probe_end = 0;
  probe_rows = 0;
  replaced_keys.clear();
  claims_capacity = 0;  // the index grew: claims find their slots again
  refresh_claims();
}

void Store::Impl::locate(std::span<const TaskKey> keys, std::span<std::optional<Loc>> out) {
  if (probe_end > 0 && table_misses > probe_rows) load_tables();
  std::vector<std::uint32_t> todo;
  if (index.empty() && probe_rows > 0) {  // a reader: straight to the tables
    for (std::size_t i = 0; i < keys.size(); ++i) {
      out[i] = std::nullopt;
      todo.push_back(static_cast<std::uint32_t>(i));
    }
    locate_in_tables(keys, todo, out);
    return;
  }
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i + kPrefetch < keys.size()) detail::prefetch(index, keys[i + kPrefetch]);
    const auto it = index.find(keys[i]);
    if (it == index.end()) {
      out[i] = std::nullopt;
      todo.push_back(static_cast<std::uint32_t>(i));
    } else {
      const Loc* loc = visible(it->second);
      out[i] = loc ? std::optional<Loc>(*loc) : std::nullopt;
    }
  }
  locate_in_tables(keys, todo, out);
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
  // Keys in no table at open first go to the tables' own indexes, in one pass a table.
  if (probe_end > 0 && table_misses > probe_rows) load_tables();
  std::vector<std::optional<Loc>> stored(keys.size());
  if (probe_rows > 0) {
    std::vector<std::uint32_t> todo;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (i + kPrefetch < keys.size()) detail::prefetch(index, keys[i + kPrefetch]);
      if (!index.contains(keys[i])) todo.push_back(static_cast<std::uint32_t>(i));
    }
    locate_in_tables(keys, todo, stored);
  }
  refresh_claims();
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i + kPrefetch < keys.size()) detail::prefetch(index, keys[i + kPrefetch]);
    if (stored[i] && (!stored[i]->failed() || !claim_failed)) {
      out[i] = stored[i]->failed() ? Lookup::failed : Lookup::ok;
      continue;
    }
    // A new key holds a kReleased marker until its claim is made: a
    // throw in between leaves no location that points at a record.
    auto [it, inserted] = index.try_emplace(keys[i], Loc::make(kReleased, 0, false, 0));
    Loc& v = it->second;
    ClaimRec c{keys[i], &*it, Loc{}, false, true};
    if (inserted) {
      if (stored[i]) {  // a failed record in a table, to compute again
        c.old = *stored[i];
        c.had_old = true;
      }
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
  if (c.had_old) replaced(c.key, c.old);
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
    const std::uint32_t pos = m->at(static_cast<std::uint32_t>(loc.row()));
    const auto k = static_cast<std::size_t>(
        std::upper_bound(m->first.begin(), m->first.end(), pos) - m->first.begin() - 1);
    return Place{-1, t, m->group[k], pos - m->first[k]};
  }
  return Place{-1, t, loc.group(), loc.row()};
}

Store::Impl::DeadRows Store::Impl::dead_rows(std::vector<bool>* frozen_dead) const {
  DeadRows dead;
  auto kill = [&](const TaskKey& key, std::size_t end) {
    if (const auto f = in_tables(key, end)) dead[{f->table, f->hit.group}].push_back(f->hit.row);
  };
  for (std::size_t t = 0; t < tables.size(); ++t)
    for (const TaskKey& key : tables[t]->key_index().replacing()) kill(key, t);
  const unsigned frozen = 1 - active;
  const bool has_frozen = mem_table[frozen] != kNoTable;
  if (has_frozen) {
    for (const TaskKey& key : mems[frozen].replacing) kill(key, tables.size());
  }
  // The active memtable's replacing keys: in the frozen memtable, else in a table.
  absl::flat_hash_set<TaskKey, TaskKeyHash> rest(mems[active].replacing.begin(),
                                                 mems[active].replacing.end());
  if (has_frozen && !rest.empty()) {
    const auto& entries = mems[frozen].entries;
    if (frozen_dead) frozen_dead->assign(entries.size(), false);
    for (std::size_t e = 0; e < entries.size(); ++e) {
      if (entries[e].superseded || !rest.contains(entries[e].key)) continue;
      if (frozen_dead) (*frozen_dead)[e] = true;
      rest.erase(entries[e].key);
    }
  }
  for (const TaskKey& key : rest) kill(key, tables.size());
  for (auto& [tg, rows] : dead) std::sort(rows.begin(), rows.end());
  return dead;
}

void Store::Impl::live_rows(const DeadRows& dead, std::size_t t, std::size_t g,
                            const std::function<void(const std::vector<Record>&)>& fn) const {
  const TableReader& tr = *tables[t];
  const hsize_t rows = tr.groups()[g].rows;
  auto range = [&](hsize_t start, hsize_t end) {
    for (hsize_t at = start; at < end; at += kFetchChunk)
      fn(tr.read_range(g, at, std::min<hsize_t>(kFetchChunk, end - at)));
  };
  hsize_t at = 0;
  const auto it = dead.find({static_cast<std::uint32_t>(t), static_cast<std::uint32_t>(g)});
  if (it != dead.end()) {
    for (hsize_t d : it->second) {
      if (d >= rows || d < at) continue;
      range(at, d);
      at = d + 1;
    }
  }
  range(at, rows);
}

void Store::Impl::each_stored(const std::function<void(const Record&)>& fn) const {
  std::vector<bool> frozen_dead;
  const DeadRows dead = dead_rows(&frozen_dead);
  for (std::size_t t = 0; t < tables.size(); ++t) {
    const auto& groups = tables[t]->groups();
    for (std::size_t g = 0; g < groups.size(); ++g) {
      live_rows(dead, t, g, [&](const std::vector<Record>& recs) {
        for (const Record& r : recs) fn(r);
      });
    }
  }
  for (unsigned slot : {1 - active, active}) {
    if (mem_table[slot] == kNoTable) continue;
    const auto& entries = mems[slot].entries;
    for (std::size_t e = 0; e < entries.size(); ++e) {
      if (entries[e].superseded) continue;
      if (slot != active && e < frozen_dead.size() && frozen_dead[e]) continue;
      fn(mems[slot].get(e));
    }
  }
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
