// The write-ahead log and the MANIFEST on their own, without a Store.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "mpibatch/error.hpp"
#include "store/log.hpp"
#include "store/manifest.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using mpibatch::Problem;
using mpibatch::detail::LogWriter;
using mpibatch::detail::Manifest;
using mpibatch::detail::read_manifest;
using mpibatch::detail::replay_log;
using mpibatch::detail::write_manifest;
using mpibatch::test_support::TempDir;

void add(LogWriter& w, const std::string& payload) {
  w.add([&](std::string& out) { out += payload; });
}

std::vector<std::string> replayed(const fs::path& path, std::vector<Problem>& problems) {
  std::vector<std::string> out;
  replay_log(
      path, [&](std::string_view p, std::uint64_t) { out.emplace_back(p); }, problems);
  return out;
}

// Payloads start with a frame type byte; 1 is a record batch (not a commit).
const std::string kA = std::string(1, '\x01') + "first";
const std::string kB = std::string(1, '\x01') + "second";
const std::string kC = std::string(1, '\x01') + "never committed";

TEST(Log, OnlyCommittedFramesReplayInOrder) {
  TempDir dir;
  const fs::path path = dir / "1.log";
  {
    LogWriter w(path);
    add(w, kA);
    add(w, kB);
    w.commit();
    add(w, kC);  // not committed: dropped on replay
  }
  std::vector<Problem> problems;
  EXPECT_EQ(replayed(path, problems), (std::vector<std::string>{kA, kB}));
  EXPECT_TRUE(problems.empty());
  EXPECT_THROW(LogWriter{path}, mpibatch::Error);  // never over an existing log
}

TEST(Log, EveryTornTailIsSilentAndDamageInTheMiddleIsNamed) {
  TempDir dir;
  const fs::path path = dir / "1.log";
  {
    LogWriter w(path);
    add(w, kA);
    w.commit();
    add(w, kB);
    w.commit();
  }
  std::string bytes(fs::file_size(path), '\0');
  std::ifstream(path, std::ios::binary)
      .read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  // Cut anywhere: what a crash leaves. Never an error, never more than was committed.
  for (std::size_t n = 16; n < bytes.size(); ++n) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes.substr(0, n);
    std::vector<Problem> problems;
    const auto got = replayed(path, problems);
    EXPECT_TRUE(problems.empty()) << "cut at " << n;
    EXPECT_LE(got.size(), 2u);
    if (!got.empty()) {
      EXPECT_EQ(got[0], kA);
    }
  }
  // A flipped byte in the first frame's payload, good frames after it: reported.
  std::string damaged = bytes;
  damaged[16 + 16 + 2] ^= 0x40;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << damaged;
  std::vector<Problem> problems;
  const auto got = replayed(path, problems);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].file, path.string());
  EXPECT_NE(problems[0].what.find("bad checksum or frame at offset 16"), std::string::npos)
      << problems[0].what;
  EXPECT_EQ(got, (std::vector<std::string>{kB}));
}

TEST(Log, NotALogIsRefused) {
  TempDir dir;
  const fs::path path = dir / "1.log";
  std::ofstream(path) << "this is not a log file at all";
  std::vector<Problem> problems;
  EXPECT_THROW(replayed(path, problems), mpibatch::NotAStoreError);
}

TEST(Manifest, WrittenAndReadBackAndAbsentIsNullopt) {
  TempDir dir;
  const fs::path path = dir / "MANIFEST";
  EXPECT_FALSE(read_manifest(path).has_value());
  auto stamp = [](std::uint64_t size) {
    return mpibatch::detail::FileStamp{size, 1700000000123456789, std::string(32, 'a')};
  };
  Manifest written{6, "base-000000000006-1.h5", {7, 9, 12}, {}};
  written.stamps = {{"base-000000000006-1.h5", stamp(1)},
                    {"000000000007.h5", stamp(7)},
                    {"000000000009.h5", stamp(9)},
                    {"000000000012.h5", stamp(12)}};
  written.views = {stamp(100), stamp(101)};  // a view being replaced
  write_manifest(path, written);
  const auto m = read_manifest(path);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->base, 6);
  EXPECT_EQ(m->base_file, "base-000000000006-1.h5");
  EXPECT_EQ(m->segments, (std::vector<std::int64_t>{7, 9, 12}));
  EXPECT_EQ(m->stamps, written.stamps);
  EXPECT_EQ(m->views, written.views);
  // A stamp for every table is required.
  EXPECT_THROW(write_manifest(path, Manifest{6, "base-000000000006-1.h5", {7}, {}}),
               mpibatch::StoreError);
  write_manifest(path, Manifest{12,
                                "base-000000000012-2.h5",
                                {},
                                {{"base-000000000012-2.h5", stamp(2)}}});  // replaced whole
  EXPECT_EQ(read_manifest(path)->segments.size(), 0u);
  EXPECT_EQ(read_manifest(path)->base, 12);
}

TEST(Manifest, DamagedOrNewerIsRefusedWithWhy) {
  TempDir dir;
  const fs::path path = dir / "MANIFEST";
  std::ofstream(path) << "mpibatch-manifest 99\nbase 1 x.h5\n";
  EXPECT_THROW(read_manifest(path), mpibatch::StoreVersionError);
  std::ofstream(path, std::ios::trunc) << "mpibatch-manifest 2\nbase one\n";
  EXPECT_THROW(read_manifest(path), mpibatch::StoreCorruptError);
  std::ofstream(path, std::ios::trunc) << "garbage";
  EXPECT_THROW(read_manifest(path), mpibatch::StoreCorruptError);
}

// A line lost, added or changed is damage, not a shorter list of tables.
TEST(Manifest, EveryLineIsCoveredByItsChecksum) {
  TempDir dir;
  const fs::path path = dir / "MANIFEST";
  const mpibatch::detail::FileStamp s{10, 20, std::string(32, 'b')};
  write_manifest(
      path,
      Manifest{6,
               "base-000000000006-1.h5",
               {7, 9},
               {{"base-000000000006-1.h5", s}, {"000000000007.h5", s}, {"000000000009.h5", s}}});
  std::string text;
  std::getline(std::ifstream(path), text, '\0');
  auto expect_refused = [&](const std::string& damaged, const char* why) {
    std::ofstream(path, std::ios::trunc) << damaged;
    try {
      read_manifest(path);
      ADD_FAILURE() << "read a MANIFEST with " << why;
    } catch (const mpibatch::StoreCorruptError& e) {
      EXPECT_NE(std::string(e.what()).find("MANIFEST"), std::string::npos) << e.what();
    }
  };
  const auto seg = text.find("segment 7");
  ASSERT_NE(seg, std::string::npos);
  std::string removed = text;
  removed.erase(seg, text.find('\n', seg) + 1 - seg);
  expect_refused(removed, "a segment line removed");
  std::string changed = text;
  changed[seg + 8] = '8';
  expect_refused(changed, "a segment's number changed");
  expect_refused(text.substr(0, text.find("checksum")), "no checksum line");
  std::ofstream(path, std::ios::trunc) << text;
  EXPECT_EQ(read_manifest(path)->segments, (std::vector<std::int64_t>{7, 9}));
}

}  // namespace
