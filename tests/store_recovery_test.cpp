// Opening a store after a crash, and damage: what survives, what is named.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <map>

#include "damage_support.hpp"
#include "mpibatch/error.hpp"
#include "mpibatch/store.hpp"
#include "mpibatch/store_dispatch.hpp"
#include "store/table.hpp"
#include "store_support.hpp"

namespace {

using namespace mpibatch::store_support;

class StoreRecovery : public StoreTest {};

TEST_F(StoreRecovery, LogOfFormatOneIsStillReplayed) {
  fs::copy(fs::path(TEST_DATA_DIR) / "log_format_1", dir.path(), fs::copy_options::recursive);
  const auto path = dir / "store.h5";
  auto check = [&](const Store& s, std::uint64_t n) {
    EXPECT_TRUE(s.problems().empty());
    ASSERT_EQ(s.size(), n);
    for (std::uint64_t i = 0; i < n; ++i) {
      const auto r = s.get(demo_key(i));
      ASSERT_TRUE(r.has_value()) << i;
      EXPECT_EQ(*r, i < 30 ? test_support::fixture_record(i, 1) : demo_record(i, 1)) << i;
    }
  };
  check(Store::open(path, {.read_only = true}), 30);
  {
    Store s = Store::open(path);
    check(s, 30);
    std::vector<Record> more;
    for (std::uint64_t i = 30; i < 45; ++i) more.push_back(demo_record(i, 1));
    s.append(std::move(more));
    s.commit();
    check(s, 45);
  }
  check(Store::open(path, {.read_only = true}), 45);
}

TEST_F(StoreRecovery, LogOfANewerFormatIsRefusedWithItsVersion) {
  fs::copy(fs::path(TEST_DATA_DIR) / "log_format_1", dir.path(), fs::copy_options::recursive);
  const auto path = dir / "store.h5";
  {
    std::fstream log(Store::sidecar(path) / "000000000001.log",
                     std::ios::in | std::ios::out | std::ios::binary);
    const std::uint64_t newer = 4;
    log.seekp(8);  // after the magic
    log.write(reinterpret_cast<const char*>(&newer), sizeof newer);
  }
  try {
    Store::open(path, {.read_only = true});
    FAIL() << "a log of format 4 was opened";
  } catch (const StoreVersionError& e) {
    EXPECT_NE(std::string(e.what()).find("log format version 4"), std::string::npos) << e.what();
  }
}

// In a child: commits records 0 to 29, then runs then(s), which ends in
// crash(); afterwards the store holds exactly those 30, undamaged.
template <class F>
void expect_commit_survives(const fs::path& path, F then) {
  in_crashing_child([&] {
    Store s = Store::open(path);
    s.define_job(demo_job());
    append_range(s, 0, 30);
    s.commit();
    then(s);
  });
  Store s = Store::open(path, {.read_only = true});
  EXPECT_TRUE(s.problems().empty());
  expect_exactly(s, 30);
}

TEST_F(StoreRecovery, CommittedSurvivesCrashAndUncommittedDoesNot) {
  expect_commit_survives(dir / "s.h5", [](Store& s) {
    append_range(s, 30, 40);  // never committed
    crash();
  });
}

// Log writes happen on a background thread: one that fails (here the file
// size limit) is thrown by the next commit at the latest, naming the log,
// and what was committed before stays.
TEST_F(StoreRecovery, FailedLogWriteIsThrownByCommitAndCommittedWorkStays) {
  expect_commit_survives(dir / "s.h5", [](Store& s) {
    std::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{64 << 10, 64 << 10};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) throw std::runtime_error("setrlimit");
    const fs::path log = only_log(Store::sidecar(s.path()));
    const auto committed = fs::file_size(log);
    try {
      append_range(s, 30, 40000);  // several MiB of log
      s.commit();
    } catch (const IoError& e) {
      const std::string what = e.what();
      if (what.find(".log") == std::string::npos || what.find("large") == std::string::npos)
        throw std::runtime_error("IoError without the log or the cause: " + what);
      // What will never be committed is given back: on a full disk, the next attempt's room.
      if (fs::file_size(log) != committed)
        throw std::runtime_error("the failed write's bytes stay in the log");
      crash();
    }
    throw std::runtime_error("commit did not report the failed write");
  });
}

TEST_F(StoreRecovery, TornLogTailIsDroppedSilentlyAndWritingGoesOn) {
  const auto path = dir / "s.h5";
  commit_groups_then_crash(path, 2);
  const fs::path log = only_log(Store::sidecar(path));
  ASSERT_FALSE(log.empty());
  // Cut into the last commit group, as a crash during its write would.
  fs::resize_file(log, fs::file_size(log) - 7);
  {
    Store s = Store::open(path, {.read_only = true});
    EXPECT_TRUE(s.problems().empty());
    expect_exactly(s, 10);
  }
  // Garbage after the last commit (a half-written frame) is also a torn tail.
  const auto cut = fs::file_size(log);
  { std::ofstream(log, std::ios::app | std::ios::binary) << "\x4d\x42\x46\x4d garbage"; }
  Store s = Store::open(path);
  EXPECT_TRUE(s.problems().empty());
  expect_exactly(s, 10);
  // The writer cut the tail off: it is never read, and a full disk needs the room.
  EXPECT_LT(fs::file_size(log), cut);
  append_range(s, 10, 25);
  s.commit();
  expect_exactly(s, 25);
}

// Once a writer has replayed a log, the MANIFEST records its committed
// length: a log cut short of it, or deleted, lost committed records, which
// is damage, not a torn tail. (A log a killed writer left is protected from
// the next open on; until then its tail cannot be told from a crash's.)
TEST_F(StoreRecovery, ALogTruncatedOrDeletedAfterItWasListedIsDamage) {
  const auto path = dir / "s.h5";
  commit_groups_then_crash(path, 3);
  const fs::path log = only_log(Store::sidecar(path));
  ASSERT_FALSE(log.empty());
  in_crashing_child([&] {  // a writer opens it, lists the log, and is killed
    Store s = Store::open(path);
    crash();
  });
  const fs::path keep = dir / "keep.log";
  fs::copy_file(log, keep);
  {
    const Store r = Store::open(path, {.read_only = true});
    EXPECT_TRUE(r.problems().empty());
    expect_exactly(r, 30);
  }
  fs::resize_file(log, fs::file_size(log) - 200);  // into committed frames
  {
    const Store r = Store::open(path, {.read_only = true});
    ASSERT_EQ(r.problems().size(), 1u);
    EXPECT_EQ(r.problems()[0].file, log.string());
    EXPECT_NE(r.problems()[0].what.find("truncated, committed records lost"), std::string::npos)
        << r.problems()[0].what;
  }
  EXPECT_THROW(Store::open(path), StoreCorruptError);
  fs::remove(log);
  {
    const Store r = Store::open(path, {.read_only = true});
    ASSERT_EQ(r.problems().size(), 1u);
    EXPECT_EQ(r.problems()[0].file, log.string());
    EXPECT_NE(r.problems()[0].what.find("missing"), std::string::npos) << r.problems()[0].what;
  }
  EXPECT_THROW(Store::open(path), StoreCorruptError);
  fs::copy_file(keep, log);  // put back: sound again, and a writer goes on
  Store w = Store::open(path);
  expect_exactly(w, 30);
}

TEST_F(StoreRecovery, BadChecksumInTheMiddleIsReportedNotSkipped) {
  const auto path = dir / "s.h5";
  commit_groups_then_crash(path, 5);
  const fs::path log = only_log(Store::sidecar(path));
  {
    std::fstream f(log, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(log) / 3));
    f.put('\x7f').put('\x7f');
  }
  Store r = Store::open(path, {.read_only = true});
  ASSERT_FALSE(r.problems().empty());
  EXPECT_EQ(r.problems()[0].file, log.string());
  EXPECT_NE(r.problems()[0].what.find("offset"), std::string::npos);
  EXPECT_GE(r.size(), 40u);  // the rest is still readable
  EXPECT_TRUE(r.get(demo_key(49)).has_value());
  try {
    Store::open(path);
    ADD_FAILURE() << "a writer opened a damaged store";
  } catch (const StoreCorruptError& e) {
    EXPECT_NE(std::string(e.what()).find(log.string()), std::string::npos) << e.what();
  }
  Store w = Store::open(path, {.allow_damaged = true});
  EXPECT_FALSE(w.problems().empty());
}

TEST_F(StoreRecovery, CrashedRunIsMarkedCrashed) {
  const auto path = dir / "s.h5";
  in_crashing_child([&] {
    Store s = Store::open(path);
    s.begin_run(RunInfo{.command_line = "x"});
    s.commit();
    crash();
  });
  EXPECT_EQ(Store::open(path, {.read_only = true}).runs().at(0).state, RunState::running);
  EXPECT_EQ(Store::open(path).runs().at(0).state, RunState::crashed);
}

TEST_F(StoreRecovery, MissingOrDamagedSegmentIsNamedAndTheRestReadable) {
  const auto path = dir / "s.h5";
  {
    Store s = Store::open(path, {.segment_records = 10});
    s.define_job(demo_job());
    for (std::uint64_t c = 0; c < 3; ++c) {
      append_range(s, c * 10, c * 10 + 10);
      s.commit();
    }
  }
  std::vector<fs::path> segs = test_support::tables(path, true);
  ASSERT_EQ(segs.size(), 3u);
  fs::remove(segs[0]);
  { std::ofstream(segs[1], std::ios::binary | std::ios::trunc) << "not hdf5 any more"; }
  Store r = Store::open(path, {.read_only = true});
  ASSERT_EQ(r.problems().size(), 2u);
  EXPECT_EQ(r.problems()[0].file, segs[0].string());
  EXPECT_NE(r.problems()[0].what.find("missing"), std::string::npos);
  EXPECT_EQ(r.problems()[1].file, segs[1].string());
  EXPECT_EQ(r.size(), 10u);
  for (std::uint64_t i = 20; i < 30; ++i) EXPECT_EQ(*r.get(demo_key(i)), demo_record(i));
  EXPECT_THROW(Store::open(path), StoreCorruptError);
}

TEST_F(StoreRecovery, MissingBaseFileIsNamed) {
  const auto path = dir / "s.h5";
  {
    Store s = Store::open(path, {.segment_records = 10});
    s.define_job(demo_job());
    append_range(s, 0, 10);
  }
  const fs::path base = test_support::base_table(path);
  fs::remove(base);
  Store r = Store::open(path, {.read_only = true});
  ASSERT_EQ(r.problems().size(), 1u);
  EXPECT_EQ(r.problems()[0].file, base.string());
  EXPECT_EQ(r.size(), 10u);
}

TEST_F(StoreRecovery, NewerFormatIsRefusedWithItsVersion) {
  const auto path = dir / "s.h5";
  Store::open(path).compact();
  {
    hid_t f = H5Fopen(test_support::base_table(path).c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    hid_t a = H5Aopen(f, "mpibatch_format", H5P_DEFAULT);
    const std::int64_t v = 99;
    ASSERT_GE(H5Awrite(a, H5T_NATIVE_INT64, &v), 0);
    H5Aclose(a);
    H5Fclose(f);
  }
  damage_support::restamp(path);  // a table a newer build wrote, not a damaged one
  for (bool ro : {true, false}) {
    try {
      Store::open(path, {.read_only = ro});
      ADD_FAILURE() << "opened a newer store";
    } catch (const StoreVersionError& e) {
      EXPECT_NE(std::string(e.what()).find("99"), std::string::npos) << e.what();
    }
  }
}

// A sidecar that is a symbolic link would aim a writer's clean-up at the
// folder it names (in a shared /tmp, anyone's): never followed.
TEST_F(StoreRecovery, ASidecarThatIsASymbolicLinkIsNeverFollowed) {
  const fs::path victim = dir / "victim";
  fs::create_directory(victim);
  for (const char* name : {"x.tmp", "000000000002.h5", "000000000001.log", "notes.txt"})
    std::ofstream(victim / name) << "mine";
  const auto path = dir / "s.h5";
  fs::create_directory_symlink(victim, Store::sidecar(path));
  for (bool ro : {false, true}) {
    try {
      Store::open(path, {.read_only = ro});
      ADD_FAILURE() << "opened a store through a symbolic link";
    } catch (const NotAStoreError& e) {
      EXPECT_NE(std::string(e.what()).find("s.h5.d: a symbolic link"), std::string::npos)
          << e.what();
    }
  }
  std::size_t left = 0;
  for (const auto& e : fs::directory_iterator(victim)) left += e.path().filename() != "MANIFEST";
  EXPECT_EQ(left, 4u);
  EXPECT_FALSE(fs::exists(victim / "MANIFEST"));
  // A sidecar anyone may write in is read, not written.
  const auto other = dir / "o.h5";
  { Store::open(other).define_job(demo_job()); }
  fs::permissions(Store::sidecar(other), fs::perms::others_write, fs::perm_options::add);
  EXPECT_THROW(Store::open(other), NotAStoreError);
  EXPECT_NO_THROW(Store::open(other, {.read_only = true}));
}

// The sidecar is opened once: a name swapped for a link while a writer works
// (anyone who may rename entries in the store's folder could) is never
// followed; every file goes to the folder the writer opened. Messages still
// name files by the sidecar's name, not by the descriptor.
TEST_F(StoreRecovery, ASidecarSwappedForALinkWhileWritingIsNeverFollowed) {
  const fs::path victim = dir / "victim";
  fs::create_directory(victim);
  const std::vector<std::string> mine = {"x.tmp", "000000000002.h5", "000000000001.log",
                                         "MANIFEST.tmp"};
  for (const auto& name : mine) std::ofstream(victim / name) << "mine";
  const auto path = dir / "s.h5";
  const fs::path moved = dir / "moved.d";
  {
    Store s = Store::open(path, {.segment_records = 100});
    s.define_job(demo_job());
    append_range(s, 0, 50);
    s.commit();
    fs::rename(Store::sidecar(path), moved);
    fs::create_directory_symlink(victim, Store::sidecar(path));
    append_range(s, 50, 500);  // segments flushed, logs removed, the MANIFEST replaced
    s.commit();
    s.compact();  // a merge: new base, old tables deleted
  }
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(victim)) left.push_back(e.path().filename());
  std::sort(left.begin(), left.end());
  std::vector<std::string> want = mine;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(left, want);
  for (const auto& name : mine) {
    std::string text;
    std::getline(std::ifstream(victim / name), text);
    EXPECT_EQ(text, "mine") << name;
  }
  // The store lives on in the folder the writer opened.
  fs::remove(Store::sidecar(path));
  fs::rename(moved, Store::sidecar(path));
  const Store r = Store::open(path, {.read_only = true});
  EXPECT_TRUE(r.problems().empty());
  EXPECT_EQ(r.size(), 500u);
  // A damaged table is named by its path under the sidecar.
  const auto table = mpibatch::test_support::tables(path).at(0);
  { std::ofstream(table, std::ios::app) << "junk"; }
  const Store d = Store::open(path, {.read_only = true});
  ASSERT_FALSE(d.problems().empty());
  EXPECT_EQ(d.problems()[0].file, table.string());
  EXPECT_EQ(d.problems()[0].what.find("/proc/self/fd"), std::string::npos) << d.problems()[0].what;
}

TEST_F(StoreRecovery, PathThatIsNotAStore) {
  { std::ofstream(dir / "notes.txt") << "hello"; }
  EXPECT_THROW(Store::open(dir / "notes.txt"), NotAStoreError);
  EXPECT_FALSE(fs::exists(Store::sidecar(dir / "notes.txt"))) << "nothing created beside it";
  {
    hid_t f = H5Fcreate((dir / "plain.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
  }
  try {
    Store::open(dir / "plain.h5", {.read_only = true});
    ADD_FAILURE();
  } catch (const NotAStoreError& e) {
    EXPECT_NE(std::string(e.what()).find("plain.h5"), std::string::npos);
    EXPECT_EQ(e.exit_status(), kExitUsage);
  }
  EXPECT_THROW(Store::open(dir.path()), NotAStoreError);
  EXPECT_THROW(Store::open(dir / "absent.h5", {.read_only = true}), NotAStoreError);
  EXPECT_FALSE(Store::exists(dir / "notes.txt"));
}

TEST_F(StoreRecovery, ReadOnlyDirectory) {
  fs::permissions(dir.path(), fs::perms::all & ~fs::perms::others_write & ~fs::perms::group_write);
  const auto ro = dir / "ro";
  fs::create_directory(ro);
  {
    Store s = Store::open(ro / "kept.h5");
    s.define_job(demo_job());
    append_range(s, 0, 5);
    s.compact();
  }
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                          fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  // Root ignores permissions: check as an unprivileged user in a child.
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(10);
    try {
      Store::open(ro / "new.h5");
      ::_exit(11);
    } catch (const IoError& e) {
      if (std::string(e.what()).find((ro / "new.h5").string()) == std::string::npos) ::_exit(12);
    } catch (...) {
      ::_exit(13);
    }
    try {  // readers need no write access
      if (Store::open(ro / "kept.h5", {.read_only = true}).size() != 5) ::_exit(14);
    } catch (...) {
      ::_exit(15);
    }
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
