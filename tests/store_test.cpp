#include "mpibatch/store.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <map>

#include "mpibatch/error.hpp"
#include "mpibatch/store_dispatch.hpp"
#include "store/table.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace mpibatch;
using mpibatch::test_support::demo_job;
using mpibatch::test_support::demo_key;
using mpibatch::test_support::demo_record;
using mpibatch::test_support::TempDir;

// Runs fn in a child process. fn must end with crash(): _exit skips the
// Store's destructor (no close, no commit), as a kill -9 would.
[[noreturn]] void crash() {
  ::_exit(0);
}

template <class F>
void in_crashing_child(F fn) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int code = 0;
    try {
      fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      code = 1;
    }
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
}

void append_range(Store& s, std::uint64_t from, std::uint64_t to, std::int64_t run = 1) {
  std::vector<Record> batch;
  for (std::uint64_t i = from; i < to; ++i) batch.push_back(demo_record(i, run));
  s.append(batch);
}

// A child commits `commits` groups of 10 records, then crashes.
void commit_groups_then_crash(const fs::path& path, std::uint64_t commits) {
  in_crashing_child([&] {
    Store s = Store::open(path);
    s.define_job(demo_job());
    for (std::uint64_t c = 0; c < commits; ++c) {
      append_range(s, c * 10, c * 10 + 10);
      s.commit();
    }
    crash();
  });
}

void expect_exactly(const Store& s, std::uint64_t n) {
  EXPECT_EQ(s.size(), n);
  for (std::uint64_t i = 0; i < n; ++i) {
    auto r = s.get(demo_key(i));
    ASSERT_TRUE(r.has_value()) << "record " << i;
    EXPECT_EQ(*r, demo_record(i, r->run)) << "record " << i;
  }
  EXPECT_FALSE(s.get(demo_key(n)).has_value());
}

fs::path only_log(const fs::path& dir) {
  fs::path found;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".log" && fs::file_size(e.path()) > 16) found = e.path();
  return found;
}

TEST(Store, CreateAppendCommitReopen) {
  TempDir dir;
  const auto path = dir / "run.h5";
  {
    Store s = Store::open(path);
    s.define_job(demo_job());
    append_range(s, 0, 100);
    s.commit();
  }
  EXPECT_TRUE(Store::exists(path));
  Store r = Store::open(path, {.read_only = true});
  expect_exactly(r, 100);
  ASSERT_EQ(r.jobs().size(), 1u);
  EXPECT_EQ(r.jobs()[0], demo_job());
}

TEST(Store, BatchLookupSeesOkFailedAndMissing) {
  TempDir dir;
  Store s = Store::open(dir / "s.h5");
  s.define_job(demo_job());
  append_range(s, 0, 50);
  std::vector<TaskKey> keys;
  for (std::uint64_t i = 0; i < 60; ++i) keys.push_back(demo_key(i));
  std::vector<Lookup> out(keys.size());
  s.lookup(keys, out);  // before commit: appended records are visible
  for (std::uint64_t i = 0; i < 60; ++i) {
    const Lookup want = i >= 50 ? Lookup::missing : i % 11 == 0 ? Lookup::failed : Lookup::ok;
    EXPECT_EQ(out[i], want) << i;
  }
  std::vector<Lookup> wrong(3);
  EXPECT_THROW(s.lookup(keys, wrong), UsageError);
}

TEST(Store, LaterRecordReplacesEarlierAcrossSegmentsAndCompaction) {
  TempDir dir;
  const auto path = dir / "s.h5";
  Record ok = demo_record(11);  // 11 fails in demo_record: make an ok retry of it
  ok.status = Status::ok;
  ok.error.clear();
  ok.values = {std::int64_t{11}, 5.5, false, std::string("retried")};
  {
    Store s = Store::open(path, {.segment_records = 5});
    s.define_job(demo_job());
    append_range(s, 0, 20);
    s.commit();  // a segment holds the failed one
    s.append(std::span(&ok, 1));
    s.commit();
    EXPECT_EQ(s.get(ok.key)->status, Status::ok);
    EXPECT_EQ(s.size(), 20u);
  }
  {
    Store s = Store::open(path, {.read_only = true});
    EXPECT_EQ(*s.get(ok.key), ok);
    EXPECT_EQ(s.size(), 20u);
  }
  Store s = Store::open(path);
  s.compact();
  EXPECT_EQ(*s.get(ok.key), ok);
  EXPECT_EQ(s.size(), 20u);
}

// A writer reads its own records back while segments are flushed under it:
// two job versions share segments, and keys are replaced within a memtable,
// across memtables and across segments (the newest record always wins).
TEST(Store, WriterReadsItsRecordsBackWhileSegmentsAreFlushed) {
  TempDir dir;
  const auto path = dir / "s.h5";
  std::map<TaskKey, Record> want;
  auto replaced = [](std::uint64_t i, std::int64_t version, int round) {
    Record r = demo_record(i, 1, version);
    r.status = Status::ok;
    r.error.clear();
    r.values = {std::int64_t{round}, 0.5 * round, round % 2 == 0, "round " + std::to_string(round)};
    return r;
  };
  auto check = [&](const Store& s) {
    ASSERT_EQ(s.size(), want.size());
    std::vector<TaskKey> keys;
    for (const auto& [k, r] : want) {
      keys.push_back(k);
      const auto got = s.get(k);
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(*got, r);
    }
    std::vector<Lookup> found(keys.size());
    s.lookup(keys, found);
    for (std::size_t i = 0; i < keys.size(); ++i)
      EXPECT_EQ(found[i], want[keys[i]].status == Status::ok ? Lookup::ok : Lookup::failed);
    std::size_t n = 0;
    s.for_each([&](const Record& r) {
      ++n;
      EXPECT_EQ(r, want[r.key]);
    });
    EXPECT_EQ(n, want.size());
  };
  {
    Store s = Store::open(path, {.segment_records = 16});
    s.define_job(demo_job(1));
    s.define_job(demo_job(2));
    for (int round = 0; round < 12; ++round) {
      std::vector<Record> batch;
      for (std::uint64_t i = 0; i < 9; ++i) {
        const std::uint64_t k = static_cast<std::uint64_t>(round) * 9 + i;
        batch.push_back(demo_record(k, 1, 1 + static_cast<std::int64_t>(k % 2)));
      }
      // Replace a key of each earlier round, and one of this batch.
      for (int r = 0; r < round; r += 3)
        batch.push_back(replaced(static_cast<std::uint64_t>(r) * 9 + 4, 1, round));
      batch.push_back(replaced(static_cast<std::uint64_t>(round) * 9 + 1, 2, round));
      for (const auto& r : batch) want[r.key] = r;
      s.append(std::move(batch));
      s.commit();
      check(s);
    }
    s.compact();
    check(s);
  }
  check(Store::open(path, {.read_only = true}));
}

// Logs of the previous format (fixed-width fields) are replayed, and a
// writer goes on in the current format next to them.
TEST(Store, LogOfFormatOneIsStillReplayed) {
  TempDir dir;
  fs::copy(fs::path(TEST_DATA_DIR) / "log_format_1", dir.path(), fs::copy_options::recursive);
  const auto path = dir / "store.h5";
  auto check = [&](const Store& s, std::uint64_t n) {
    EXPECT_TRUE(s.problems().empty());
    ASSERT_EQ(s.size(), n);
    for (std::uint64_t i = 0; i < n; ++i) {
      const auto r = s.get(demo_key(i));
      ASSERT_TRUE(r.has_value()) << i;
      EXPECT_EQ(*r, demo_record(i, 1)) << i;
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

TEST(Store, LogOfANewerFormatIsRefusedWithItsVersion) {
  TempDir dir;
  fs::copy(fs::path(TEST_DATA_DIR) / "log_format_1", dir.path(), fs::copy_options::recursive);
  const auto path = dir / "store.h5";
  {
    std::fstream log(Store::sidecar(path) / "000000000001.log",
                     std::ios::in | std::ios::out | std::ios::binary);
    const std::uint64_t newer = 3;
    log.seekp(8);  // after the magic
    log.write(reinterpret_cast<const char*>(&newer), sizeof newer);
  }
  try {
    Store::open(path, {.read_only = true});
    FAIL() << "a log of format 3 was opened";
  } catch (const StoreVersionError& e) {
    EXPECT_NE(std::string(e.what()).find("log format version 3"), std::string::npos) << e.what();
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

TEST(Store, CommittedSurvivesCrashAndUncommittedDoesNot) {
  TempDir dir;
  expect_commit_survives(dir / "s.h5", [](Store& s) {
    append_range(s, 30, 40);  // never committed
    crash();
  });
}

// Log writes happen on a background thread: one that fails (here the file
// size limit) is thrown by the next commit at the latest, naming the log,
// and what was committed before stays.
TEST(Store, FailedLogWriteIsThrownByCommitAndCommittedWorkStays) {
  TempDir dir;
  expect_commit_survives(dir / "s.h5", [](Store& s) {
    std::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{64 << 10, 64 << 10};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) throw std::runtime_error("setrlimit");
    try {
      append_range(s, 30, 40000);  // several MiB of log
      s.commit();
    } catch (const IoError& e) {
      const std::string what = e.what();
      if (what.find(".log") == std::string::npos || what.find("large") == std::string::npos)
        throw std::runtime_error("IoError without the log or the cause: " + what);
      crash();
    }
    throw std::runtime_error("commit did not report the failed write");
  });
}

TEST(Store, TornLogTailIsDroppedSilentlyAndWritingGoesOn) {
  TempDir dir;
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
  { std::ofstream(log, std::ios::app | std::ios::binary) << "\x4d\x42\x46\x4d garbage"; }
  Store s = Store::open(path);
  EXPECT_TRUE(s.problems().empty());
  expect_exactly(s, 10);
  append_range(s, 10, 25);
  s.commit();
  expect_exactly(s, 25);
}

TEST(Store, BadChecksumInTheMiddleIsReportedNotSkipped) {
  TempDir dir;
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

TEST(Store, SegmentsCompactionAndOrder) {
  TempDir dir;
  const auto path = dir / "s.h5";
  std::vector<TaskKey> task_order, keys_in_append_order;
  for (std::uint64_t c = 0; c < 10; ++c)  // as appended below
    for (std::uint64_t i = 500 - (c + 1) * 50; i < 500 - c * 50; ++i)
      keys_in_append_order.push_back(demo_key(i));
  {
    Store s = Store::open(path, {.segment_records = 64});
    s.define_job(demo_job());
    const auto run = s.begin_run(RunInfo{.command_line = "test", .ranks = 2, .hosts = {"a", "b"}});
    for (std::uint64_t c = 0; c < 10; ++c) {
      std::vector<TaskKey> keys;
      // Tasks in reverse index order, so task order differs from key order.
      for (std::uint64_t i = 0; i < 50; ++i) keys.push_back(demo_key(499 - c * 50 - i));
      s.append_tasks(run, keys);
      task_order.insert(task_order.end(), keys.begin(), keys.end());
      append_range(s, 500 - (c + 1) * 50, 500 - c * 50, run);
      s.commit();
    }
    s.end_run(run, RunState::finished, 0);
  }
  auto check = [&](const Store& s) {
    expect_exactly(s, 500);
    // for_each goes in the order stored: the order appended.
    std::vector<TaskKey> stored;
    s.for_each([&](const Record& r) { stored.push_back(r.key); });
    EXPECT_EQ(stored, keys_in_append_order);
    std::vector<TaskKey> seen;
    s.for_each_task(1, [&](const TaskKey& k, const Record* r) {
      ASSERT_NE(r, nullptr);
      EXPECT_EQ(r->key, k);
      seen.push_back(k);
    });
    EXPECT_EQ(seen, task_order);
    ASSERT_EQ(s.runs().size(), 1u);
    EXPECT_EQ(s.runs()[0].state, RunState::finished);
    EXPECT_EQ(s.runs()[0].task_count, 500);
    EXPECT_EQ(s.runs()[0].hosts, (std::vector<std::string>{"a", "b"}));
  };
  EXPECT_TRUE(fs::exists(Store::sidecar(path) / "MANIFEST"));
  check(Store::open(path, {.read_only = true}));
  {
    Store s = Store::open(path);
    s.compact();
    check(s);
  }
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(Store::sidecar(path)))
    left.push_back(e.path().filename().string().substr(0, 5));
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"MANIF", "base-"}))
      << "a compacted, closed store is its view, a MANIFEST and one table";
  check(Store::open(path, {.read_only = true}));
}

// A segment holds its rows in the order they were appended (the flush reads
// its memtable front to back); a replaced record is not in it, its
// replacement is, where it was appended. Compaction keeps that order.
TEST(Store, SegmentRowsAreInAppendedOrder) {
  TempDir dir;
  const auto path = dir / "s.h5";
  std::vector<TaskKey> want;
  {
    Store s = Store::open(path);
    s.define_job(demo_job());
    for (std::uint64_t i = 40; i-- > 0;) {
      append_range(s, i, i + 1);
      if (i != 30) want.push_back(demo_key(i));
    }
    append_range(s, 30, 31);  // replaces task 30's record
    want.push_back(demo_key(30));
  }  // closed: the memtable went to a segment
  std::vector<fs::path> segments = test_support::tables(path, true);
  ASSERT_EQ(segments.size(), 1u);
  auto keys_of = [](const fs::path& file) {
    const detail::TableReader t(file);
    std::vector<TaskKey> keys;
    std::vector<std::int8_t> status;
    t.read_index(0, keys, status);
    return keys;
  };
  EXPECT_EQ(keys_of(segments[0]), want);
  Store::open(path).compact();
  EXPECT_EQ(keys_of(test_support::base_table(path)), want);
}

// commit_due() says when the memtable is full (records and task keys both
// count); the commit it asks for writes a segment, and it is false again.
TEST(Store, CommitIsDueWhenTheMemtableIsFull) {
  TempDir dir;
  const auto path = dir / "s.h5";
  Store s = Store::open(path, {.segment_records = 30});
  s.define_job(demo_job());
  const auto run = s.begin_run(RunInfo{.command_line = "test"});
  auto segments = [&] {
    std::size_t n = 0;
    for (const auto& e : fs::directory_iterator(Store::sidecar(path)))
      n += e.path().extension() == ".h5" ? 1 : 0;
    return n;
  };
  s.commit();
  const std::size_t before = segments();
  std::vector<TaskKey> keys;
  for (std::uint64_t i = 0; i < 10; ++i) keys.push_back(demo_key(i));
  s.append_tasks(run, keys);
  append_range(s, 0, 10, run);
  EXPECT_FALSE(dispatch::commit_due(s)) << "20 of 30";
  append_range(s, 10, 20, run);
  EXPECT_TRUE(dispatch::commit_due(s)) << "30 of 30";
  EXPECT_EQ(segments(), before) << "nothing is written before the commit";
  s.commit();
  EXPECT_FALSE(dispatch::commit_due(s));
  s.close();
  EXPECT_EQ(segments(), before + 1);
  EXPECT_FALSE(dispatch::commit_due(Store::open(path, {.read_only = true}))) << "readers never are";
  expect_exactly(Store::open(path, {.read_only = true}), 20);
}

TEST(Store, CrashedRunIsMarkedCrashed) {
  TempDir dir;
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

TEST(Store, MissingOrDamagedSegmentIsNamedAndTheRestReadable) {
  TempDir dir;
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

TEST(Store, MissingBaseFileIsNamed) {
  TempDir dir;
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

TEST(Store, NewerFormatIsRefusedWithItsVersion) {
  TempDir dir;
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
  for (bool ro : {true, false}) {
    try {
      Store::open(path, {.read_only = ro});
      ADD_FAILURE() << "opened a newer store";
    } catch (const StoreVersionError& e) {
      EXPECT_NE(std::string(e.what()).find("99"), std::string::npos) << e.what();
    }
  }
}

TEST(Store, PathThatIsNotAStore) {
  TempDir dir;
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

TEST(Store, ReadOnlyDirectory) {
  TempDir dir;
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

TEST(Store, SecondWriterIsRefusedNamingTheHolderReadersAreNot) {
  TempDir dir;
  const auto path = dir / "s.h5";
  Store w = Store::open(path);
  w.define_job(demo_job());
  append_range(w, 0, 3);
  w.commit();
  try {
    Store::open(path);
    ADD_FAILURE() << "second writer got in";
  } catch (const StoreLockedError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("pid " + std::to_string(::getpid())), std::string::npos) << msg;
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    EXPECT_NE(msg.find(host), std::string::npos) << msg;
  }
  EXPECT_EQ(Store::open(path, {.read_only = true}).size(), 3u);
}

TEST(Store, StaleLockOfDeadProcessIsTakenOverForeignHostIsNot) {
  TempDir dir;
  const auto path = dir / "s.h5";
  Store::open(path).close();
  fs::create_directories(Store::sidecar(path));
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);  // now a pid that is not running
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  { std::ofstream(Store::sidecar(path) / "LOCK") << host << " " << child << "\n"; }
  EXPECT_NO_THROW(Store::open(path));
  // An empty LOCK (a kill inside an older mpibatch's acquire) names no
  // holder: stale too. Ours is never empty (written whole, then linked).
  fs::create_directories(Store::sidecar(path));
  { std::ofstream(Store::sidecar(path) / "LOCK"); }
  EXPECT_NO_THROW(Store::open(path));
  fs::create_directories(Store::sidecar(path));
  { std::ofstream(Store::sidecar(path) / "LOCK") << "other-node 4242\n"; }
  try {
    Store::open(path);
    ADD_FAILURE();
  } catch (const StoreLockedError& e) {
    EXPECT_NE(std::string(e.what()).find("other-node pid 4242"), std::string::npos) << e.what();
  }
}

TEST(Store, JobsAndRecordsAreChecked) {
  TempDir dir;
  Store s = Store::open(dir / "s.h5");
  s.define_job(demo_job());
  s.define_job(demo_job());  // identical: fine
  JobInfo changed = demo_job();
  changed.results.pop_back();
  EXPECT_THROW(s.define_job(changed), UsageError);
  changed.version = 2;
  EXPECT_NO_THROW(s.define_job(changed));
  JobInfo bad = demo_job();
  bad.name = "a/b";
  EXPECT_THROW(s.define_job(bad), UsageError);

  Record r = demo_record(1);
  r.values[1] = std::int64_t{3};  // half must be float64
  EXPECT_THROW(s.append(std::span(&r, 1)), UsageError);
  r = demo_record(1);
  r.job = "nope";
  EXPECT_THROW(s.append(std::span(&r, 1)), UsageError);
  r = demo_record(1);
  r.values.pop_back();
  EXPECT_THROW(s.append(std::span(&r, 1)), UsageError);
  EXPECT_EQ(s.size(), 0u);
}

TEST(Store, NewJobVersionHasNewKeys) {
  TempDir dir;
  Store s = Store::open(dir / "s.h5");
  s.define_job(demo_job(1));
  s.define_job(demo_job(2));
  const Record r1 = demo_record(3, 1, 1);
  s.append(std::span(&r1, 1));
  std::vector<Lookup> out(2);
  const std::vector<TaskKey> keys{demo_key(3, 1), demo_key(3, 2)};
  s.lookup(keys, out);
  EXPECT_EQ(out[0], Lookup::ok);
  EXPECT_EQ(out[1], Lookup::missing);
}

TEST(Store, ReaderSeesCommitsOfALiveWriter) {
  TempDir dir;
  const auto path = dir / "s.h5";
  Store w = Store::open(path, {.segment_records = 25});
  w.define_job(demo_job());
  for (std::uint64_t c = 0; c < 6; ++c) {
    append_range(w, c * 10, c * 10 + 10);
    w.commit();
    append_range(w, 1000 + c, 1001 + c);  // not yet committed: readers must not see it
    Store r = Store::open(path, {.read_only = true});
    EXPECT_TRUE(r.problems().empty());
    EXPECT_EQ(r.size(), (c + 1) * 10 + c);
    EXPECT_FALSE(r.get(demo_key(1000 + c)).has_value());
    if (c > 0) {
      EXPECT_TRUE(r.get(demo_key(999 + c)).has_value());
    }
    w.commit();
  }
}

}  // namespace

namespace {

TEST(Store, EraseIfRemovesOnlyWhatItSaysAndSurvivesReopen) {
  mpibatch::test_support::TempDir dir;
  const auto path = dir / "s.h5";
  {
    mpibatch::Store s = mpibatch::Store::open(path, {.segment_records = 30});
    s.define_job(mpibatch::test_support::demo_job());
    std::vector<mpibatch::Record> batch;
    for (std::uint64_t i = 0; i < 100; ++i) batch.push_back(mpibatch::test_support::demo_record(i));
    s.append(std::move(batch));
    s.commit();
    EXPECT_EQ(
        s.erase_if([](const mpibatch::Record& r) { return r.status == mpibatch::Status::failed; }),
        10u);
    EXPECT_EQ(s.size(), 90u);
  }
  mpibatch::Store r = mpibatch::Store::open(path, {.read_only = true});
  EXPECT_TRUE(r.problems().empty());
  EXPECT_EQ(r.size(), 90u);
  for (std::uint64_t i = 0; i < 100; ++i) {
    const auto rec = r.get(mpibatch::test_support::demo_key(i));
    EXPECT_EQ(rec.has_value(), i % 11 != 0) << i;
    if (rec) {
      EXPECT_EQ(*rec, mpibatch::test_support::demo_record(i));
    }
  }
}

}  // namespace

namespace {

using namespace mpibatch;
using test_support::demo_job;
using test_support::demo_record;
using test_support::TempDir;

using test_support::to_batch;

TEST(Store, ColumnarBatchIsStoredExactlyAsRecords) {
  TempDir dir;
  std::vector<Record> records;
  for (std::uint64_t i = 0; i < 300; ++i) records.push_back(demo_record(i));
  {
    Store s = Store::open(dir / "s.h5", {.segment_records = 100});
    s.define_job(demo_job());
    dispatch::append(s, to_batch({records.begin(), records.begin() + 150}));
    s.commit();  // the first 100 go to a segment
    dispatch::append(s, to_batch({records.begin() + 150, records.end()}));
    for (const Record& r : records) ASSERT_EQ(s.get(r.key), r) << "in memory";
    s.commit();
  }
  for (int pass = 0; pass < 2; ++pass) {  // replayed from the log, then compacted
    Store s = Store::open(dir / "s.h5");
    EXPECT_EQ(s.size(), records.size());
    for (const Record& r : records) ASSERT_EQ(s.get(r.key), r) << "pass " << pass;
    s.compact();
  }
}

// Claims: a dispatcher looks keys up and claims those to compute in one
// index access; until a claimed key's record is appended it looks as before.
std::vector<TaskKey> keys_of(const std::vector<Record>& records) {
  std::vector<TaskKey> keys;
  for (const Record& r : records) keys.push_back(r.key);
  return keys;
}

TEST(Store, ClaimedKeysLookAsBeforeUntilTheirRecordsAreAppended) {
  TempDir dir;
  Store s = Store::open(dir / "s.h5");
  s.define_job(demo_job());
  s.append(std::vector<Record>{demo_record(1), demo_record(11)});  // 11: failed
  // 2 and 3 are new; 2 again is a duplicate of a key in hand.
  const std::vector<TaskKey> keys{demo_key(1), demo_key(11), demo_key(2), demo_key(3), demo_key(2)};
  std::vector<Lookup> out(keys.size());
  std::vector<dispatch::Claim> ids(keys.size());
  dispatch::claim(s, keys, out, ids, /*claim_failed=*/true);
  EXPECT_EQ(out, (std::vector<Lookup>{Lookup::ok, Lookup::missing, Lookup::missing, Lookup::missing,
                                      Lookup::claimed}));
  std::vector<Lookup> seen(keys.size());
  s.lookup(keys, seen);
  EXPECT_EQ(seen, (std::vector<Lookup>{Lookup::ok, Lookup::failed, Lookup::missing, Lookup::missing,
                                       Lookup::missing}));
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(s.get(demo_key(11)), demo_record(11)) << "the failed record stays until replaced";
  EXPECT_FALSE(s.get(demo_key(2)));
  std::size_t n = 0;
  s.for_each([&](const Record&) { ++n; });
  EXPECT_EQ(n, 2u);

  // Without claim_failed, a failed record is reported and not claimed.
  std::vector<Lookup> out2(1);
  std::vector<dispatch::Claim> ids2(1);
  dispatch::claim(s, std::vector<TaskKey>{demo_key(22)}, out2, ids2, true);  // no record: claimed
  s.append(std::vector<Record>{demo_record(33)});  // failed, as every 11th
  dispatch::claim(s, std::vector<TaskKey>{demo_key(33)}, out2, ids2, false);
  EXPECT_EQ(out2[0], Lookup::failed);

  // The records come back (11 now ok), in an order other than the claims'.
  Record r11 = demo_record(12);
  r11.key = demo_key(11);
  const std::vector<Record> done{demo_record(3), r11, demo_record(2)};
  dispatch::append(s, to_batch(done), std::vector<dispatch::Claim>{ids[3], ids[1], ids[2]});
  s.lookup(keys, seen);
  EXPECT_EQ(seen, std::vector<Lookup>(keys.size(), Lookup::ok));
  EXPECT_EQ(s.size(), 5u);
  for (const Record& r : done) EXPECT_EQ(s.get(r.key), r);
  s.close();
  Store again = Store::open(dir / "s.h5", {.read_only = true});
  EXPECT_EQ(again.size(), 5u) << "the unsettled claim of 22 left nothing behind";
  for (const Record& r : done) EXPECT_EQ(again.get(r.key), r);
}

TEST(Store, ReleasedClaimsLeaveKeysAsTheyWere) {
  TempDir dir;
  Store s = Store::open(dir / "s.h5");
  s.define_job(demo_job());
  s.append(std::vector<Record>{demo_record(11)});  // failed
  const std::vector<TaskKey> keys{demo_key(11), demo_key(5)};
  std::vector<Lookup> out(2);
  std::vector<dispatch::Claim> ids(2);
  dispatch::claim(s, keys, out, ids, true);
  dispatch::release_claims(s);
  EXPECT_EQ(s.size(), 1u);
  EXPECT_EQ(s.get(demo_key(11)), demo_record(11));
  EXPECT_FALSE(s.get(demo_key(5)));
  EXPECT_THROW(
      dispatch::append(s, to_batch({demo_record(5)}), std::vector<dispatch::Claim>{ids[1]}),
      UsageError);
  // Claimed again, and appended with and without a claim.
  dispatch::claim(s, keys, out, ids, true);
  EXPECT_EQ(out, (std::vector<Lookup>{Lookup::missing, Lookup::missing}));
  dispatch::append(s, to_batch({demo_record(5)}), std::vector<dispatch::Claim>{ids[1]});
  dispatch::release_claims(s);
  s.append(std::vector<Record>{demo_record(7)});
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(s.get(demo_key(5)), demo_record(5));
  EXPECT_EQ(s.get(demo_key(11)), demo_record(11));
  s.compact();
  EXPECT_EQ(s.size(), 3u);
}

TEST(Store, AppendWithWrongClaimsIsRefusedWhole) {
  TempDir dir;
  Store s = Store::open(dir / "s.h5");
  s.define_job(demo_job());
  const std::vector<TaskKey> keys{demo_key(1), demo_key(2)};
  std::vector<Lookup> out(2);
  std::vector<dispatch::Claim> ids(2);
  dispatch::claim(s, keys, out, ids, true);
  const RecordBatch both = to_batch({demo_record(1), demo_record(2)});
  auto refused = [&](const std::vector<dispatch::Claim>& claims, const std::string& says) {
    try {
      dispatch::append(s, both, claims);
      ADD_FAILURE() << "accepted claims that should say: " << says;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  refused({ids[0]}, "1 claims for 2 records");
  refused({ids[1], ids[0]}, "not an outstanding claim of its key");
  refused({ids[0], ids[0]}, "record 1 names claim");
  refused({ids[0], 99}, "record 1 names claim 99");
  EXPECT_EQ(s.size(), 0u);
  dispatch::append(s, both, ids);  // the claims are still good
  EXPECT_EQ(s.get(demo_key(2)), demo_record(2));
  refused(ids, "not an outstanding claim");  // settled already
}

// Slots move when the index grows: claims made before still settle the
// right keys, and a record appended without its claim is replaced by the
// claimed one.
TEST(Store, ClaimsSurviveTheIndexGrowingAndPlainAppends) {
  TempDir dir;
  Store s = Store::open(dir / "s.h5", {.segment_records = 5000});
  s.define_job(demo_job());
  const std::size_t n = 12000;  // well past the room reserved at open (5,000)
  std::vector<Record> records;
  for (std::uint64_t i = 0; i < n; ++i) records.push_back(demo_record(i));
  std::vector<Lookup> out(n);
  std::vector<dispatch::Claim> ids(n);
  dispatch::claim(s, keys_of({records.begin(), records.begin() + n / 2}), {out.data(), n / 2},
                  {ids.data(), n / 2}, true);
  // Plain appends grow the index while the first half is claimed; one of
  // them is a claimed key's.
  Record early = demo_record(n + 1);
  early.key = records[7].key;
  std::vector<Record> plain(records.begin() + n / 2, records.end());
  plain.push_back(early);
  s.append(plain);
  std::vector<Lookup> again(10);
  std::vector<dispatch::Claim> more(10);
  dispatch::claim(s, keys_of({records.begin(), records.begin() + 10}), again, more, true);
  EXPECT_EQ(again, std::vector<Lookup>(10, Lookup::claimed));
  for (std::size_t at = 0; at < n / 2; at += 1000) {
    std::vector<Record> part(records.begin() + at, records.begin() + at + 1000);
    dispatch::append(s, to_batch(part), {ids.data() + at, 1000});
    s.commit();  // segments are written meanwhile
  }
  EXPECT_EQ(s.size(), n);
  for (const Record& r : records) ASSERT_EQ(s.get(r.key), r);
}

TEST(Store, ColumnarBatchIsCheckedWhole) {
  TempDir dir;
  Store s = Store::open(dir / "s.h5");
  s.define_job(demo_job());
  const RecordBatch good = to_batch({demo_record(1), demo_record(2)});
  auto rejected = [&](RecordBatch b, const std::string& says) {
    try {
      dispatch::append(s, b);
      ADD_FAILURE() << "accepted a batch that should say: " << says;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  RecordBatch b = good;
  b.rank.pop_back();
  rejected(b, "column rank has 1 rows, the keys 2");
  b = good;
  b.values[1] = std::vector<std::int64_t>{1, 2};
  rejected(b, "result field 'half' has a column of the wrong type");
  b = good;
  std::get<3>(b.values[3]).pop_back();
  rejected(b, "column label has 1 rows");
  b = good;
  b.params.clear();
  rejected(b, "0 param columns; the job defines 1");
  b = good;
  b.result_sizes[0] += 1;
  rejected(b, "result or error sizes do not add up");
  b = good;
  b.job = "nope";
  EXPECT_THROW(dispatch::append(s, b), UsageError);
  EXPECT_EQ(s.size(), 0u);
  dispatch::append(s, good);
  EXPECT_EQ(s.size(), 2u);
}

}  // namespace
