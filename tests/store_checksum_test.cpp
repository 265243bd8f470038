// Damage to a table's bytes: every reader notices it, names what is damaged,
// and never returns a changed value as if it were sound.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "mpibatch/error.hpp"
#include "mpibatch/store.hpp"
#include "store_support.hpp"

namespace {

using namespace mpibatch::store_support;

// Where each dataset's bytes lie in a table file (chunks and contiguous
// extents): the regions HDF5 reads as raw data, not its metadata.
struct Extent {
  std::string dataset;
  haddr_t at = 0;
  hsize_t size = 0;
};

herr_t add_dataset(hid_t, const char* name, const H5O_info_t* info, void* out) {
  if (info->type == H5O_TYPE_DATASET) static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

std::vector<Extent> extents(const fs::path& file) {
  std::vector<Extent> out;
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(f, 0);
  std::vector<std::string> names;
  EXPECT_GE(H5Ovisit(f, H5_INDEX_NAME, H5_ITER_NATIVE, add_dataset, &names), 0);
  for (const auto& n : names) {
    const hid_t ds = H5Dopen2(f, n.c_str(), H5P_DEFAULT);
    const hid_t dcpl = H5Dget_create_plist(ds);
    if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
      const hid_t space = H5Dget_space(ds);
      hsize_t chunks = 0;
      H5Dget_num_chunks(ds, space, &chunks);
      for (hsize_t c = 0; c < chunks; ++c) {
        hsize_t offset = 0, size = 0;
        unsigned mask = 0;
        haddr_t at = 0;
        H5Dget_chunk_info(ds, space, c, &offset, &mask, &at, &size);
        out.push_back({n, at, size});
      }
      H5Sclose(space);
    } else if (H5Dget_offset(ds) != HADDR_UNDEF && H5Dget_storage_size(ds) > 0) {
      out.push_back({n, H5Dget_offset(ds), H5Dget_storage_size(ds)});
    }
    H5Pclose(dcpl);
    H5Dclose(ds);
  }
  H5Fclose(f);
  return out;
}

// Flips one byte's bits, keeping the file's mtime, as bit rot does: only
// the checksums can tell.
void flip(const fs::path& file, std::uint64_t at) {
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(at));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(static_cast<char>(c ^ 0x5A));
  }
  const timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0);
}

const Extent& extent_of(const std::vector<Extent>& all, const std::string& dataset,
                        std::size_t nth = 0) {
  for (const Extent& e : all)
    if (e.dataset == dataset && nth-- == 0) return e;
  throw std::runtime_error("no extent of " + dataset);
}

class StoreChecksum : public StoreTest {
 protected:
  static constexpr std::uint64_t kRecords = 10000;
  void SetUp() override {
    Store s = Store::open(path);
    s.define_job(demo_job());
    append_range(s, 0, kRecords);
  }
  // The segment the records went to (the base stays empty: no run finished).
  fs::path table() const { return mpibatch::test_support::tables(path, true).at(0); }
  fs::path path = dir / "s.h5";
};

TEST_F(StoreChecksum, AChunkThatFailsItsChecksumIsNamedAndTheRestIsRead) {
  // The second chunk of a result column: rows 4096 to 8191.
  flip(table(), extent_of(extents(table()), "jobs/demo/v1/results/half", 1).at + 100);
  const Store r = Store::open(path, {.read_only = true});
  EXPECT_TRUE(r.problems().empty());  // size and mtime as recorded: not read whole
  EXPECT_EQ(*r.get(demo_key(10)), demo_record(10));
  try {
    r.get(demo_key(5000));
    ADD_FAILURE() << "read a record of a damaged chunk";
  } catch (const mpibatch::StoreCorruptError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(table().string() + ":/jobs/demo/v1/results/half"), std::string::npos)
        << what;
    EXPECT_NE(what.find("rows"), std::string::npos) << what;
  }
  const auto found = r.check_files();
  ASSERT_EQ(found.size(), 1u);
  EXPECT_NE(found[0].what.find("results/half: rows 4096 to 8191"), std::string::npos)
      << found[0].what;
  const Store full = Store::open(path, {.read_only = true, .check_digests = true});
  ASSERT_EQ(full.problems().size(), 1u);
  EXPECT_NE(full.problems()[0].what.find("digest"), std::string::npos);
}

TEST_F(StoreChecksum, AKeyColumnBlockThatFailsItsSumStopsLookupsInIt) {
  // The key column is mapped, not read through HDF5: its own block sums.
  flip(table(), extent_of(extents(table()), "jobs/demo/v1/key").at + 16 * 6000 + 3);
  const Store r = Store::open(path, {.read_only = true});
  EXPECT_TRUE(r.get(demo_key(10)).has_value());  // another block
  try {
    r.get(demo_key(6000));
    ADD_FAILURE() << "looked a key up in a damaged block";
  } catch (const mpibatch::StoreCorruptError& e) {
    EXPECT_NE(std::string(e.what()).find("/jobs/demo/v1/key: rows 4096 to 8191"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(r.check_files().empty());
  EXPECT_THROW(Store::open(path).get(demo_key(6000)), mpibatch::StoreCorruptError);
}

// Any byte of raw data changed: every record read is either the one
// written or an error, never a changed value.
TEST_F(StoreChecksum, RandomFlipsInDataNeverGiveAChangedValue) {
  const fs::path pristine = dir / "pristine.h5";
  struct stat st {};
  ASSERT_EQ(::stat(table().c_str(), &st), 0);  // the mtime the MANIFEST recorded
  fs::copy_file(table(), pristine);
  const std::vector<Extent> all = extents(table());
  std::mt19937_64 rng(20261205);
  int detected = 0;
  for (int trial = 0; trial < 30; ++trial) {
    fs::copy_file(pristine, table(), fs::copy_options::overwrite_existing);
    const timespec times[2] = {st.st_atim, st.st_mtim};
    ASSERT_EQ(::utimensat(AT_FDCWD, table().c_str(), times, 0), 0);
    const Extent& e = all[rng() % all.size()];
    flip(table(), e.at + rng() % e.size);
    bool threw = false;
    try {
      const Store r = Store::open(path, {.read_only = true});
      ASSERT_TRUE(r.problems().empty()) << "a reader checked a file of the recorded mtime";
      for (std::uint64_t i = 0; i < kRecords; i += 97) {
        const auto got = r.get(demo_key(i));
        ASSERT_TRUE(got.has_value()) << e.dataset << " trial " << trial;
        EXPECT_EQ(*got, demo_record(i)) << e.dataset << " trial " << trial;
      }
      std::uint64_t n = 0;
      r.for_each([&](const Record& rec) {
        EXPECT_EQ(rec, demo_record(std::get<std::int64_t>(rec.params[0])))
            << e.dataset << " trial " << trial;
        ++n;
      });
      EXPECT_EQ(n, kRecords);
      threw = !r.check_files().empty();
    } catch (const mpibatch::Error&) {
      threw = true;
    }
    detected += threw ? 1 : 0;
    // verify reads every byte against the MANIFEST's digest.
    const Store full = Store::open(path, {.read_only = true, .check_digests = true});
    EXPECT_FALSE(full.problems().empty()) << e.dataset << " trial " << trial;
  }
  EXPECT_GT(detected, 20);  // unused chunk bytes may change no value and still be caught
}

// A table whose size or mtime changed is checked against its digest before
// HDF5 reads it: damaged metadata is named, never handed to HDF5.
TEST_F(StoreChecksum, AChangedFileIsCheckedBeforeHdf5ReadsIt) {
  const fs::path t = table();
  {
    std::fstream f(t, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    const std::string junk(3000, '\xff');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  const Store r = Store::open(path, {.read_only = true});
  ASSERT_EQ(r.problems().size(), 1u);
  EXPECT_EQ(r.problems()[0].file, t.string());
  EXPECT_NE(r.problems()[0].what.find("digest"), std::string::npos) << r.problems()[0].what;
  EXPECT_THROW(Store::open(path), mpibatch::StoreCorruptError);
}

// A segment line removed from the MANIFEST is damage: nothing is deleted.
TEST_F(StoreChecksum, AManifestLineRemovedDeletesNothing) {
  {
    Store s = Store::open(path, {.segment_records = 10});
    for (std::uint64_t c = 0; c < 3; ++c) {
      append_range(s, kRecords + c * 10, kRecords + c * 10 + 10);
      s.commit();
    }
  }
  const auto before = mpibatch::test_support::tables(path);
  ASSERT_GE(before.size(), 3u);
  const fs::path manifest = Store::sidecar(path) / "MANIFEST";
  std::string text;
  std::getline(std::ifstream(manifest), text, '\0');
  const auto seg = text.find("\nsegment ");
  ASSERT_NE(seg, std::string::npos);
  text.erase(seg + 1, text.find('\n', seg + 1) - seg);
  std::ofstream(manifest, std::ios::trunc) << text;
  EXPECT_THROW(Store::open(path), mpibatch::StoreCorruptError);
  EXPECT_THROW(Store::open(path, {.read_only = true}), mpibatch::StoreCorruptError);
  EXPECT_EQ(mpibatch::test_support::tables(path), before);
}

// The view (what h5py reads) is stamped in the MANIFEST too: verify names a
// changed view without opening it, and the next writer writes it anew.
TEST_F(StoreChecksum, AChangedViewIsNamedByVerifyAndWrittenAnewByTheNextWriter) {
  { Store::open(path); }  // closes: the view maps the segment
  EXPECT_TRUE(Store::open(path, {.read_only = true}).check_files().empty());
  flip(path, fs::file_size(path) - 10);
  {
    const Store r = Store::open(path, {.read_only = true});
    EXPECT_TRUE(r.problems().empty());  // readers of records never use the view
    const auto found = r.check_files();
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].file, path.string());
    EXPECT_NE(found[0].what.find("the view: its bytes differ"), std::string::npos) << found[0].what;
  }
  { Store::open(path); }
  EXPECT_TRUE(Store::open(path, {.read_only = true}).check_files().empty());
}

}  // namespace
