#include "store/key_index.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "mpibatch/error.hpp"
#include "store/block_sums.hpp"

namespace mpibatch::detail {

namespace {

constexpr std::uint32_t kFailedBit = 0x80000000u;
constexpr std::size_t kWriteChunk = std::size_t{1} << 20;

// 2^bits buckets of 4 to 8 keys (a bucket's keys fill a cache line), or
// in the tagged layout of 16 to 32 tags (a bucket's tags fill one too).
unsigned bucket_bits(std::size_t n, bool tagged) {
  const std::size_t least = tagged ? 32 : 8;
  unsigned b = 0;
  while (b < 30 && (least << b) <= n) ++b;
  return b;
}

// Bits of the key that its bucket does not give (the bucket takes the top of hi).
std::uint8_t tag_of(const TaskKey& key) {
  return static_cast<std::uint8_t>(key.lo >> 56);
}

std::size_t bucket_of(const TaskKey& key, unsigned bits) {
  return bits == 0 ? 0 : static_cast<std::size_t>(key.hi >> (64 - bits));
}

struct Entry {
  TaskKey key;
  std::uint32_t row = 0;  // global; bit 31: failed
};

// Sorts entries by key in place and returns the bucket starts (2^bits + 1
// of them): first by at most 2^10 partitions of the top bits (American flag
// sort: few enough destinations to stay in cache), then each partition.
template <class E>
std::vector<std::uint32_t> sort_entries(std::span<E> e, unsigned bits) {
  const unsigned pbits = std::min(bits, 10u);
  const std::size_t np = std::size_t{1} << pbits;
  std::vector<std::size_t> start(np + 1, 0);
  for (const E& x : e) ++start[bucket_of(x.key, pbits) + 1];
  for (std::size_t p = 0; p < np; ++p) start[p + 1] += start[p];
  std::vector<std::size_t> next(start.begin(), start.end() - 1);
  for (std::size_t p = 0; p < np; ++p) {
    while (next[p] < start[p + 1]) {
      E x = e[next[p]];
      std::size_t to = bucket_of(x.key, pbits);
      while (to != p) {
        std::swap(x, e[next[to]++]);
        to = bucket_of(x.key, pbits);
      }
      e[next[p]++] = x;
    }
  }
  for (std::size_t p = 0; p < np; ++p) {
    std::sort(e.begin() + static_cast<std::ptrdiff_t>(start[p]),
              e.begin() + static_cast<std::ptrdiff_t>(start[p + 1]),
              [](const E& a, const E& c) { return a.key < c.key; });
  }
  const std::size_t nb = std::size_t{1} << bits;
  std::vector<std::uint32_t> buckets(nb + 1);
  std::size_t i = 0;
  for (std::size_t b = 0; b <= nb; ++b) {
    while (i < e.size() && bucket_of(e[i].key, bits) < b) ++i;
    buckets[b] = static_cast<std::uint32_t>(i);
  }
  return buckets;
}

h5::Handle contiguous(hid_t group, const char* name, hid_t type, hsize_t n) {
  h5::Handle space(h5::check_id(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
  h5::Handle dcpl(h5::check_id(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate"));
  h5::check(H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS), "H5Pset_layout", name);
  h5::check(H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY), "H5Pset_alloc_time", name);
  return h5::Handle(
      h5::check_id(H5Dcreate2(group, name, type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                   "H5Dcreate2", name));
}

// A contiguous dataset written front to back, and its block sums.
class SummedDataset {
 public:
  SummedDataset(hid_t group, const char* name, hid_t type, hsize_t n)
      : ds_(contiguous(group, name, type, n)), type_(type), elem_(H5Tget_size(type)) {}
  void append(const void* data, hsize_t count) {
    if (count == 0) return;
    h5::Handle file_space(h5::check_id(H5Dget_space(ds_.get()), "H5Dget_space"));
    h5::check(
        H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &written_, nullptr, &count, nullptr),
        "H5Sselect_hyperslab");
    h5::Handle mem_space(h5::check_id(H5Screate_simple(1, &count, nullptr), "H5Screate_simple"));
    h5::check(H5Dwrite(ds_.get(), type_, mem_space.get(), file_space.get(), H5P_DEFAULT, data),
              "H5Dwrite", "index");
    sums_.add(data, count * elem_);
    written_ += count;
  }
  // Appends the block sums to out.
  void finish(std::vector<std::uint64_t>& out) {
    const auto s = sums_.finish();
    out.insert(out.end(), s.begin(), s.end());
  }

 private:
  h5::Handle ds_;
  hid_t type_;
  std::size_t elem_;
  hsize_t written_ = 0;
  BlockSummer sums_;
};

}  // namespace

// ---------------------------------------------------------------- writing

void KeyIndexWriter::add(std::uint32_t group, std::uint64_t first, std::span<const TaskKey> keys,
                         std::span<const std::int8_t> status) {
  if (first + keys.size() > kMaxTableRows)
    throw StoreError("a table may hold at most " + std::to_string(kMaxTableRows) + " rows");
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const auto row = static_cast<std::uint32_t>(first + i);
    pending_.push_back({keys[i], status[i] != 0 ? row | kFailedBit : row, group});
  }
}

void KeyIndexWriter::prepare(const std::vector<std::uint64_t>& group_rows) {
  std::vector<std::uint64_t> first(group_rows.size() + 1, 0);
  for (std::size_t g = 0; g < group_rows.size(); ++g) first[g + 1] = first[g] + group_rows[g];
  if (first.back() != pending_.size() || first.back() > kMaxTableRows)
    throw StoreError("key index: " + std::to_string(pending_.size()) + " keys for " +
                     std::to_string(first.back()) + " rows");
  for (Pending& p : pending_) {
    if (p.group >= group_rows.size()) throw StoreError("key index: a row of an unknown group");
    p.row =
        static_cast<std::uint32_t>(first[p.group] + (p.row & ~kFailedBit)) | (p.row & kFailedBit);
  }
  bits_ = bucket_bits(pending_.size(), in_columns_);
  buckets_ = sort_entries(std::span<Pending>(pending_), bits_);
  prepared_ = true;
}

void KeyIndexWriter::write(hid_t file,
                           const std::vector<std::pair<std::string, std::uint64_t>>& groups,
                           std::span<const TaskKey> replacing) {
  if (!prepared_) {
    std::vector<std::uint64_t> rows;
    for (const auto& g : groups) rows.push_back(g.second);
    prepare(rows);
  }
  const std::vector<Pending>& entries = pending_;
  const unsigned bits = bits_;
  const std::vector<std::uint32_t>& buckets = buckets_;

  h5::Handle g = h5::create_group(file, "index");
  h5::write_attr(
      g.get(), "description",
      std::string(in_columns_
                      ? "mpibatch's key index: in key order, each key's row (counted over the "
                        "groups in this order; bit 31: failed) and tag (its lo >> 56), bucket "
                        "starts by the key's top bits, and keys whose rows replace an older "
                        "table's; the keys are the groups' key columns"
                      : "mpibatch's key index: keys sorted, each with its row (counted over "
                        "the groups in this order; bit 31: failed), bucket starts by the "
                        "key's top bits, and keys whose rows replace an older table's"));
  std::vector<std::string> paths;
  std::vector<std::int64_t> rows;
  for (const auto& [path, n] : groups) {
    paths.push_back(path);
    rows.push_back(static_cast<std::int64_t>(n));
  }
  h5::write_attr(g.get(), "groups", paths);
  h5::write_attr(g.get(), "group_rows", rows);
  h5::write_attr(g.get(), "bucket_bits", static_cast<std::int64_t>(bits));
  h5::Handle key = h5::key_type();
  const hsize_t n = entries.size();
  // Block sums in this order: rows, buckets, tags or keys, replacing, then
  // (tagged) each group's key column.
  SummedDataset rows_ds(g.get(), "rows", H5T_NATIVE_UINT32, n);
  SummedDataset buckets_ds(g.get(), "buckets", H5T_NATIVE_UINT32, buckets.size());
  SummedDataset keys_ds = in_columns_ ? SummedDataset(g.get(), "tags", H5T_NATIVE_UINT8, n)
                                      : SummedDataset(g.get(), "keys", key.get(), n);
  std::vector<TaskKey> kbuf;
  std::vector<std::uint32_t> rbuf;
  std::vector<std::uint8_t> tbuf;
  for (std::size_t at = 0; at < entries.size(); at += kWriteChunk) {
    const std::size_t end = std::min(entries.size(), at + kWriteChunk);
    kbuf.clear();
    rbuf.clear();
    tbuf.clear();
    for (std::size_t i = at; i < end; ++i) {
      if (in_columns_) {
        tbuf.push_back(tag_of(entries[i].key));
      } else {
        kbuf.push_back(entries[i].key);
      }
      rbuf.push_back(entries[i].row);
    }
    if (in_columns_) {
      keys_ds.append(tbuf.data(), end - at);
    } else {
      keys_ds.append(kbuf.data(), end - at);
    }
    rows_ds.append(rbuf.data(), end - at);
  }
  buckets_ds.append(buckets.data(), buckets.size());
  SummedDataset r(g.get(), "replacing", key.get(), replacing.size());
  r.append(replacing.data(), replacing.size());
  std::vector<std::uint64_t> sums;
  for (SummedDataset* d : {&rows_ds, &buckets_ds, &keys_ds, &r}) d->finish(sums);
  if (in_columns_) write_key_columns(file, groups, sums);
  h5::write_attr(g.get(), "block_bytes", static_cast<std::int64_t>(kSumBlock));
  SummedDataset(g.get(), "block_sums", H5T_NATIVE_UINT64, sums.size())
      .append(sums.data(), sums.size());
}

void KeyIndexWriter::write_key_columns(
    hid_t file, const std::vector<std::pair<std::string, std::uint64_t>>& groups,
    std::vector<std::uint64_t>& sums) const {
  // Each row's entry: the sorted entries, turned back into row order.
  constexpr std::uint32_t kNone = 0xFFFFFFFFu;
  std::vector<std::uint32_t> entry_of(pending_.size(), kNone);
  for (std::size_t i = 0; i < pending_.size(); ++i) {
    const std::uint32_t row = pending_[i].row & ~kFailedBit;
    if (row >= entry_of.size() || entry_of[row] != kNone)
      throw StoreError("key index: row " + std::to_string(row) + " given twice or out of range");
    entry_of[row] = static_cast<std::uint32_t>(i);
  }
  h5::Handle key = h5::key_type();
  std::vector<TaskKey> buf;
  std::uint64_t first = 0;
  for (const auto& [path, n] : groups) {
    SummedDataset ds(file, (path + "/key").c_str(), key.get(), n);
    for (std::uint64_t at = 0; at < n; at += kWriteChunk) {
      const std::uint64_t end = std::min<std::uint64_t>(n, at + kWriteChunk);
      buf.clear();
      for (std::uint64_t r = at; r < end; ++r) buf.push_back(pending_[entry_of[first + r]].key);
      ds.append(buf.data(), end - at);
    }
    ds.finish(sums);
    first += n;
  }
}

// ---------------------------------------------------------------- reading

KeyIndex::~KeyIndex() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

namespace {

h5::Handle open_ds(hid_t g, const char* name, const std::string& where) {
  return h5::Handle(h5::check_id(H5Dopen2(g, name, H5P_DEFAULT), "H5Dopen2", where));
}

// Where ds's elements lie in its file, if they can be used in place: one
// contiguous, unfiltered, allocated extent in exactly mem_type's layout.
std::optional<haddr_t> in_place(hid_t ds, hid_t mem_type) {
  h5::Handle dcpl(h5::check_id(H5Dget_create_plist(ds), "H5Dget_create_plist"));
  if (H5Pget_layout(dcpl.get()) != H5D_CONTIGUOUS || H5Pget_nfilters(dcpl.get()) != 0) return {};
  h5::Handle type(h5::check_id(H5Dget_type(ds), "H5Dget_type"));
  if (h5::check_tri(H5Tequal(type.get(), mem_type), "H5Tequal") <= 0) return {};
  const haddr_t at = H5Dget_offset(ds);
  if (at == HADDR_UNDEF) return {};
  return at;
}

}  // namespace

std::unique_ptr<KeyIndex> KeyIndex::open(
    hid_t file, const std::filesystem::path& path,
    const std::vector<std::pair<std::string, std::uint64_t>>& groups) {
  if (!h5::exists(file, "index")) return nullptr;
  const std::string where = path.string() + ":/index";
  auto bad = [&](const std::string& what) {
    return StoreCorruptError(path.string() + ": key index: " + what);
  };
  std::unique_ptr<KeyIndex> x(new KeyIndex());
  x->path_ = path;
  x->in_file_ = true;
  h5::Handle g = h5::open_group(file, "index");
  const auto paths = h5::read_attr_strings(g.get(), "groups");
  const auto rows = h5::read_attr_ints(g.get(), "group_rows");
  const auto bits = h5::read_attr_int(g.get(), "bucket_bits");
  if (paths.size() != rows.size() || bits < 0 || bits > 30) throw bad("bad attributes");
  x->bits_ = static_cast<unsigned>(bits);
  std::uint64_t total = 0;
  for (std::size_t k = 0; k < paths.size(); ++k) {
    const auto it = std::find_if(groups.begin(), groups.end(),
                                 [&](const auto& grp) { return grp.first == paths[k]; });
    if (it == groups.end() || rows[k] < 0 || it->second != static_cast<std::uint64_t>(rows[k]))
      throw bad("its group " + paths[k] + " does not match the table's");
    x->group_of_.push_back(static_cast<std::uint32_t>(it - groups.begin()));
    x->first_.push_back(total);
    total += static_cast<std::uint64_t>(rows[k]);
  }
  std::uint64_t table_rows = 0;
  for (const auto& grp : groups) table_rows += grp.second;
  if (total != table_rows)
    throw bad("it covers " + std::to_string(total) + " rows of " + std::to_string(table_rows));

  h5::Handle key = h5::key_type();
  x->tagged_ = !h5::exists(g.get(), "keys");
  // The arrays, each with its element size: in the tagged layout the keys
  // are the groups' key columns, one extent each.
  struct Extent {
    h5::Handle ds;
    hid_t type;
    std::uint64_t count;
    std::optional<haddr_t> at;
  };
  std::vector<Extent> arrays;
  auto add = [&](h5::Handle ds, hid_t type, std::uint64_t count) {
    if (h5::dataset_size(ds.get()) != count) throw bad("datasets of the wrong sizes");
    const auto at = in_place(ds.get(), type);
    arrays.push_back({std::move(ds), type, count, at});
  };
  const std::size_t nb = (std::size_t{1} << x->bits_) + 1;
  x->n_ = total;
  add(open_ds(g.get(), "rows", where + "/rows"), H5T_NATIVE_UINT32, total);
  add(open_ds(g.get(), "buckets", where + "/buckets"), H5T_NATIVE_UINT32, nb);
  if (x->tagged_) {
    add(open_ds(g.get(), "tags", where + "/tags"), H5T_NATIVE_UINT8, total);
    for (std::size_t k = 0; k < paths.size(); ++k)
      add(open_ds(file, (paths[k] + "/key").c_str(), path.string() + ":/" + paths[k] + "/key"),
          key.get(), static_cast<std::uint64_t>(rows[k]));
  } else {
    add(open_ds(g.get(), "keys", where + "/keys"), key.get(), total);
  }
  x->replacing_.resize(h5::dataset_size(open_ds(g.get(), "replacing", where).get()));
  h5::read_rows(open_ds(g.get(), "replacing", where).get(), key.get(), 0, x->replacing_.size(),
                x->replacing_.data());

  const bool in_place_all = std::all_of(arrays.begin(), arrays.end(), [](const Extent& a) {
    return a.at.has_value() || a.count == 0;
  });
  std::vector<const char*> where_at(arrays.size(), nullptr);
  if (x->n_ > 0 && in_place_all) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st {};
    if (fd >= 0 && ::fstat(fd, &st) == 0) {
      const auto size = static_cast<std::uint64_t>(st.st_size);
      // Each extent within the file (subtractions: a damaged offset cannot overflow).
      const bool fits = std::all_of(arrays.begin(), arrays.end(), [&](const Extent& a) {
        const std::uint64_t bytes = a.count * H5Tget_size(a.type);
        return a.count == 0 || (bytes <= size && *a.at <= size - bytes);
      });
      void* m = fits ? ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
      if (m != MAP_FAILED) {
        x->map_ = m;
        x->map_size_ = size;
        for (std::size_t a = 0; a < arrays.size(); ++a)
          if (arrays[a].count > 0) where_at[a] = static_cast<const char*>(m) + *arrays[a].at;
      }
    }
    if (fd >= 0) ::close(fd);
  }
  if (x->map_ == nullptr) {  // not in a layout to use in place: read it
    x->own_rows_.resize(x->n_);
    x->own_buckets_.resize(nb);
    h5::read_rows(arrays[0].ds.get(), H5T_NATIVE_UINT32, 0, x->n_, x->own_rows_.data());
    h5::read_rows(arrays[1].ds.get(), H5T_NATIVE_UINT32, 0, nb, x->own_buckets_.data());
    where_at[0] = reinterpret_cast<const char*>(x->own_rows_.data());
    where_at[1] = reinterpret_cast<const char*>(x->own_buckets_.data());
    x->own_keys_.resize(x->n_);
    if (x->tagged_) {
      x->own_tags_.resize(x->n_);
      h5::read_rows(arrays[2].ds.get(), H5T_NATIVE_UINT8, 0, x->n_, x->own_tags_.data());
      where_at[2] = reinterpret_cast<const char*>(x->own_tags_.data());
      for (std::size_t k = 0; k < paths.size(); ++k) {
        TaskKey* to = x->own_keys_.data() + x->first_[k];
        h5::read_rows(arrays[3 + k].ds.get(), key.get(), 0, arrays[3 + k].count, to);
        where_at[3 + k] = reinterpret_cast<const char*>(to);
      }
    } else {
      h5::read_rows(arrays[2].ds.get(), key.get(), 0, x->n_, x->own_keys_.data());
      where_at[2] = reinterpret_cast<const char*>(x->own_keys_.data());
    }
  }
  // Block sums (format 6 on): rows, buckets, tags or keys, replacing, key columns.
  std::vector<std::uint64_t> sums;
  const bool summed = h5::exists(g.get(), "block_sums");
  if (summed) {
    if (h5::read_attr_int(g.get(), "block_bytes") != static_cast<std::int64_t>(kSumBlock))
      throw bad("block sums of another block size");
    h5::Handle s = open_ds(g.get(), "block_sums", where + "/block_sums");
    sums.resize(h5::dataset_size(s.get()));
    h5::read_rows(s.get(), H5T_NATIVE_UINT64, 0, sums.size(), sums.data());
  }
  std::size_t next_sum = 0;
  auto sums_of = [&](std::size_t bytes) {
    if (!summed) return std::vector<std::uint64_t>{};
    const std::size_t n = sum_count(bytes);
    if (next_sum + n > sums.size()) throw bad("too few block sums");
    next_sum += n;
    return std::vector<std::uint64_t>(sums.begin() + static_cast<std::ptrdiff_t>(next_sum - n),
                                      sums.begin() + static_cast<std::ptrdiff_t>(next_sum));
  };
  auto checked = [&](std::size_t a, std::string name) {
    const std::size_t elem = H5Tget_size(arrays[a].type);
    return CheckedArray(std::move(name), where_at[a], arrays[a].count, elem,
                        sums_of(arrays[a].count * elem));
  };
  x->checked_.push_back(checked(0, where + "/rows"));
  x->checked_.push_back(checked(1, where + "/buckets"));
  x->checked_.push_back(checked(2, where + (x->tagged_ ? "/tags" : "/keys")));
  CheckedArray(where + "/replacing", reinterpret_cast<const char*>(x->replacing_.data()),
               x->replacing_.size(), 16, sums_of(16 * x->replacing_.size()))
      .touch_all();
  for (std::size_t a = 3; a < arrays.size(); ++a)
    x->checked_.push_back(checked(a, path.string() + ":/" + paths[a - 3] + "/key"));
  if (next_sum != sums.size()) throw bad("too many block sums");
  x->checked_[1].touch(0, 1);
  x->checked_[1].touch(nb - 1, 1);
  x->rows_ = where_at[0];
  x->buckets_ = where_at[1];
  if (x->tagged_) {
    x->tags_ = where_at[2];
    x->group_keys_.assign(where_at.begin() + 3, where_at.end());
  } else {
    x->keys_ = where_at[2];
  }
  if (u32_at(x->buckets_, 0) != 0 || u32_at(x->buckets_, nb - 1) != x->n_)
    throw bad("bucket starts out of range");
  return x;
}

std::unique_ptr<KeyIndex> KeyIndex::build(
    const std::filesystem::path& path,
    const std::vector<std::pair<std::vector<TaskKey>, std::vector<std::int8_t>>>& columns) {
  std::unique_ptr<KeyIndex> x(new KeyIndex());
  x->path_ = path;
  std::vector<Entry> entries;
  std::uint64_t total = 0;
  for (std::size_t g = 0; g < columns.size(); ++g) {
    const auto& [keys, status] = columns[g];
    x->group_of_.push_back(static_cast<std::uint32_t>(g));
    x->first_.push_back(total);
    if (total + keys.size() > kMaxTableRows)
      throw StoreError(path.string() + ": too many rows to index");
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const auto row = static_cast<std::uint32_t>(total + i);
      entries.push_back({keys[i], status[i] != 0 ? row | kFailedBit : row});
    }
    total += keys.size();
  }
  x->n_ = entries.size();
  x->bits_ = bucket_bits(x->n_, false);
  x->own_buckets_ = sort_entries(std::span<Entry>(entries), x->bits_);
  x->own_keys_.reserve(x->n_);
  x->own_rows_.reserve(x->n_);
  for (const Entry& e : entries) {
    x->own_keys_.push_back(e.key);
    x->own_rows_.push_back(e.row);
  }
  x->point_at_own();
  return x;
}

void KeyIndex::point_at_own() {
  checked_ = std::vector<CheckedArray>(3);  // in memory, from columns read through HDF5
  keys_ = reinterpret_cast<const char*>(own_keys_.data());
  rows_ = reinterpret_cast<const char*>(own_rows_.data());
  buckets_ = reinterpret_cast<const char*>(own_buckets_.data());
}

std::vector<TaskKey> KeyIndex::keys() const {
  std::vector<TaskKey> out;
  out.reserve(n_);
  for_each([&out](const TaskKey& key, TableHit) { out.push_back(key); });
  return out;
}

void KeyIndex::prefetch(const TaskKey& key, int stage) const {
  if (n_ == 0) return;
  const std::size_t b = bucket(key);
  if (stage == 0) {
    __builtin_prefetch(buckets_ + 4 * b);
  } else {
    const std::uint32_t lo = u32_at(buckets_, b);
    if (lo < n_) __builtin_prefetch(tagged_ ? tags_ + lo : keys_ + 16 * std::size_t{lo});
  }
}

std::string KeyIndex::check() const {
  try {
    check_sums();
  } catch (const StoreCorruptError& e) {
    return e.what();
  }
  std::size_t i = 0, b = 0;
  std::optional<TaskKey> last;
  std::string problem;
  for_each([&](const TaskKey& key, TableHit hit) {
    if (!problem.empty()) return;
    while (b + 1 < (std::size_t{1} << bits_) && u32_at(buckets_, b + 1) <= i) ++b;
    const std::string where = "key index: entry " + std::to_string(i) + " (group " +
                              std::to_string(hit.group) + ", row " + std::to_string(hit.row) + ")";
    if (last && !(*last < key)) {
      problem = where + ": keys out of order";
    } else if (bucket(key) != b) {
      problem = where + ": its key is in bucket " + std::to_string(bucket(key)) + ", not " +
                std::to_string(b);
    } else if (tagged_ && static_cast<std::uint8_t>(tags_[i]) != tag_of(key)) {
      problem = where + ": its tag does not match its key";
    }
    last = key;
    ++i;
  });
  return problem;
}

void KeyIndex::throw_out_of_range(std::uint32_t row) const {
  throw StoreCorruptError(path_.string() + ": key index: row " + std::to_string(row) +
                          " out of range");
}

std::optional<TableHit> KeyIndex::find(const TaskKey& key) const {
  if (n_ == 0) return std::nullopt;
  const std::size_t b = bucket(key);
  checked_[1].touch(b, 2);
  const std::uint32_t lo = u32_at(buckets_, b), hi = u32_at(buckets_, b + 1);
  if (lo > hi || hi > n_)
    throw StoreCorruptError(path_.string() + ": key index: bucket " + std::to_string(b) +
                            " out of range");
  checked_[2].touch(lo, hi - lo);
  const auto tag = static_cast<char>(tag_of(key));
  for (std::uint32_t i = lo; i < hi; ++i) {
    if (tagged_ ? tags_[i] != tag : key_at(i) != key) continue;
    checked_[0].touch(i, 1);
    const std::uint32_t stored = u32_at(rows_, i);
    const std::uint32_t row = stored & ~kFailedBit;
    if (row >= n_) throw_out_of_range(row);
    const std::size_t k = static_cast<std::size_t>(
        std::upper_bound(first_.begin(), first_.end(), std::uint64_t{row}) - first_.begin() - 1);
    const auto in_group = static_cast<std::uint32_t>(row - first_[k]);
    if (tagged_) {
      checked_[3 + k].touch(in_group, 1);
      if (key_in(k, in_group) != key) continue;
    }
    return TableHit{group_of_[k], in_group, (stored & kFailedBit) != 0};
  }
  return std::nullopt;
}

}  // namespace mpibatch::detail
