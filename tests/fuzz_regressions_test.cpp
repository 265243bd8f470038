// What the fuzz targets (tests/fuzz) found, each kept as a test: hostile
// bytes give an mpibatch::Error, never a huge allocation, a read out of
// bounds, a stray exception type or a leak (the last one shows under the
// sanitizers of tools/sanitize.sh).
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstring>
#include <fstream>

#include "engine/messages.hpp"
#include "hdf5/hdf5.hpp"
#include "mpibatch/error.hpp"
#include "mpibatch/store.hpp"
#include "store/frame_codec.hpp"
#include "store/log.hpp"
#include "store/manifest.hpp"
#include "store/table.hpp"
#include "test_support.hpp"

namespace {

using namespace mpibatch;
using namespace mpibatch::detail;
using mpibatch::test_support::demo_job;
using mpibatch::test_support::demo_record;
using mpibatch::test_support::TempDir;
using mpibatch::test_support::to_batch;
namespace fs = std::filesystem;

void put_u64(std::string& bytes, std::size_t at, std::uint64_t v) {
  ASSERT_LE(at + 8, bytes.size());
  std::memcpy(bytes.data() + at, &v, 8);
}

void put_u32(std::string& bytes, std::size_t at, std::uint32_t v) {
  ASSERT_LE(at + 4, bytes.size());
  std::memcpy(bytes.data() + at, &v, 4);
}

// A store of n demo records compacted into its base table; returns the table.
fs::path base_table(const TempDir& dir, std::uint64_t n) {
  const fs::path store = dir / "s.h5";
  {
    Store s = Store::open(store);
    s.define_job(demo_job());
    const std::int64_t run = s.begin_run(RunInfo{});
    std::vector<Record> records;
    for (std::uint64_t i = 0; i < n; ++i) records.push_back(demo_record(i, run));
    s.append(records);
    s.end_run(run, RunState::finished, kExitOk);
    s.compact();
  }
  return Store::sidecar(store) / read_manifest(Store::sidecar(store) / "MANIFEST")->base_file;
}

TEST(FuzzRegressions, WorkerResultsOfAnotherShapeAreRefusedBeforeUse) {
  std::vector<Record> records;
  for (std::uint64_t i = 1; i < 4; ++i) records.push_back(demo_record(i));
  ResultBatch sound;
  sound.records = to_batch(records);
  const JobInfo job = demo_job();
  ASSERT_EQ(misfit(sound, 3, job), "");
  EXPECT_NE(misfit(sound, 2, job), "");  // three results for two tasks

  ResultBatch rb = sound;
  rb.records.start_time.push_back(0);  // the master's keep_rows read past its row flags
  EXPECT_NE(misfit(rb, 3, job), "");
  rb = sound;
  rb.records.result_sizes[0] += 5;
  EXPECT_NE(misfit(rb, 3, job), "");
  rb = sound;
  rb.records.values.pop_back();  // a column short: the field map indexed past the columns
  EXPECT_NE(misfit(rb, 3, job), "");
  rb = sound;
  rb.records.values[0] = std::vector<double>(3);  // another type than the field's
  EXPECT_NE(misfit(rb, 3, job), "");
  rb = sound;
  std::get<3>(rb.records.values[3]).pop_back();  // a column of two rows
  EXPECT_NE(misfit(rb, 3, job), "");
  rb = sound;
  rb.interrupted = {3};
  EXPECT_NE(misfit(rb, 3, job), "");
  rb = sound;
  rb.records.status[1] = static_cast<Status>(7);
  EXPECT_NE(misfit(rb, 3, job), "");

  Batch b;
  b.inputs = "abcdef";
  b.sizes = {2, 4};
  EXPECT_EQ(misfit(b), "");
  b.sizes = {2, 5};  // compute() read past the inputs
  EXPECT_NE(misfit(b), "");
}

TEST(FuzzRegressions, MessagesClaimingHugeLengthsAreErrorsNotAllocations) {
  // A batch: Boost's class preamble, the inputs' length and bytes, the sizes.
  Batch b;
  b.inputs = "hello world";
  b.sizes = {11};
  std::string bytes = to_bytes(b);
  const std::uint64_t eleven = 11;
  const auto at = bytes.find(std::string(reinterpret_cast<const char*>(&eleven), 8) + "hello");
  ASSERT_NE(at, std::string::npos);
  std::string hostile = bytes;
  put_u64(hostile, at, std::uint64_t{1} << 60);  // Boost's string load resized to this
  EXPECT_THROW(from_bytes<Batch>(hostile), Error);
  hostile = bytes;
  put_u64(hostile, at + 8 + 11, std::uint64_t{1} << 61);  // the sizes' count
  EXPECT_THROW(from_bytes<Batch>(hostile), Error);

  // Results with nothing but one value column: its count follows ten empty members.
  ResultBatch rb;
  rb.records.values.emplace_back(std::vector<double>());
  bytes = to_bytes(rb);
  const std::size_t preamble = bytes.size() - 8 * 11 - 1 - 8;  // the column's type and length
  hostile = bytes;
  put_u64(hostile, preamble + 8 * 9, std::uint64_t{1} << 62);  // was columns.resize(that)
  EXPECT_THROW(from_bytes<ResultBatch>(hostile), Error);
  EXPECT_NO_THROW(from_bytes<ResultBatch>(bytes));
}

TEST(FuzzRegressions, LogFramesClaimingHugeCountsAreCorruptNotAllocations) {
  std::string run;
  encode_run(run, RunInfo{});
  put_u32(run, 1 + 8 + 8 + 8 + 4 + 4, 0xFFFFFFFFu);  // hosts (was 4 G strings)
  Decoder d(std::string_view(run).substr(1));
  EXPECT_THROW(decode_run(d), StoreCorruptError);

  std::string tasks;
  encode_tasks(tasks, 1, {});
  put_u64(tasks, 1 + 8, std::uint64_t{1} << 39);  // keys (was 8 TiB)
  std::vector<TaskKey> keys;
  Decoder t(std::string_view(tasks).substr(1));
  EXPECT_THROW(decode_tasks(t, keys), StoreCorruptError);

  JobInfo job = demo_job();
  job.name = "j";
  job.description = "";
  std::string frame;
  encode_job(frame, 0, job);
  put_u32(frame, 1 + 4 + 4 + 1 + 8 + 4, 0x7FFFFFFFu);  // params (was 2 G fields)
  Decoder j(std::string_view(frame).substr(1));
  std::uint32_t id = 0;
  EXPECT_THROW(decode_job(j, id), StoreCorruptError);
}

TEST(FuzzRegressions, ALogJobIdOutOfSequenceIsDamageNotAnAllocation) {
  TempDir dir;
  const fs::path store = dir / "s.h5";
  Store::open(store).close();
  {
    LogWriter w(Store::sidecar(store) / seq_name(99, ".log"));
    w.add([](std::string& out) { encode_job(out, 0xFFFFFFF0u, demo_job()); });  // was 4 G ids
    w.commit();
  }
  StoreOptions reader;
  reader.read_only = true;
  const Store s = Store::open(store, reader);
  ASSERT_EQ(s.problems().size(), 1u);
  EXPECT_NE(s.problems()[0].what.find("out of sequence"), std::string::npos);
}

TEST(FuzzRegressions, ResultBytesPastTheColumnAreCorruptNotAHugeString) {
  TempDir dir;
  const fs::path table = base_table(dir, 30);
  {
    h5::Handle f(H5Fopen(table.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    h5::Handle ds(H5Dopen2(f.get(), "jobs/demo/v1/result_offset", H5P_DEFAULT));
    h5::Handle space(H5Dget_space(ds.get()));
    const hsize_t row = 2, one = 1;
    const std::uint64_t far = std::uint64_t{1} << 62;  // was buf.resize(2^62)
    H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, &row, nullptr, &one, nullptr);
    h5::Handle mem(H5Screate_simple(1, &one, nullptr));
    ASSERT_GE(H5Dwrite(ds.get(), H5T_NATIVE_UINT64, mem.get(), space.get(), H5P_DEFAULT, &far), 0);
  }
  const TableReader reader(table);
  EXPECT_THROW(reader.read_range(0, 0, 30), StoreCorruptError);
}

TEST(FuzzRegressions, ARunGroupNamedOtherThanANumberIsCorruptNotAStrayException) {
  TempDir dir;
  const fs::path table = base_table(dir, 3);
  {
    h5::Handle f(H5Fopen(table.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    ASSERT_TRUE(f);
    ASSERT_GE(H5Lmove(f.get(), "runs/1", f.get(), "runs/x1", H5P_DEFAULT, H5P_DEFAULT), 0);
  }
  EXPECT_THROW(TableReader{table}, StoreCorruptError);  // was std::invalid_argument (stoll)
}

TEST(FuzzRegressions, AnAttributeOfManyValuesReadAsOneIsAnError) {
  TempDir dir;
  h5::init();
  h5::Handle f = h5::create_file((dir / "a.h5").string());
  h5::write_attr(f.get(), "ints", std::vector<std::int64_t>{1, 2, 3, 4});
  h5::write_attr(f.get(), "texts", std::vector<std::string>{"a", "b", "c"});
  // H5Aread wrote every value into room for one (a stack overflow).
  EXPECT_THROW(h5::read_attr_int(f.get(), "ints"), Hdf5Error);
  EXPECT_THROW(h5::read_attr_double(f.get(), "ints"), Hdf5Error);
  EXPECT_THROW(h5::read_attr_string(f.get(), "texts"), Hdf5Error);
  h5::write_attr(f.get(), "one", std::int64_t{7});
  EXPECT_EQ(h5::read_attr_int(f.get(), "one"), 7);
}

TEST(FuzzRegressions, AStringColumnReadThatFailsPartwayFreesWhatItRead) {
  TempDir dir;
  const fs::path table = base_table(dir, 4200);  // two chunks of 4096 rows
  haddr_t at = 0;
  {
    h5::Handle f(H5Fopen(table.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    h5::Handle ds(H5Dopen2(f.get(), "jobs/demo/v1/results/label", H5P_DEFAULT));
    h5::Handle space(H5Dget_space(ds.get()));
    hsize_t offset = 0, size = 0;
    unsigned mask = 0;
    ASSERT_GE(H5Dget_chunk_info(ds.get(), space.get(), 1, &offset, &mask, &at, &size), 0);
  }
  {
    // A string chunk holds heap ids (a length, a heap's address, an index),
    // with no checksum: the top byte of the chunk's first heap address.
    std::fstream file(table, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(at) + 4 + 7);
    file.put('\x7f');
  }
  // The first chunk's strings were allocated before the second failed;
  // they were not freed (LeakSanitizer under tools/sanitize.sh).
  const TableReader reader(table);
  EXPECT_THROW(reader.read_range(0, 0, 4200), Error);
  EXPECT_EQ(reader.read_range(0, 0, 10).size(), 10u);
}

}  // namespace
