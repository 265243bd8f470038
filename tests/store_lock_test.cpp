// The writer's LOCK: one writer, readers never blocked, stale locks taken over.
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
#include "mpibatch/store.hpp"
#include "mpibatch/store_dispatch.hpp"
#include "store/table.hpp"
#include "store_support.hpp"

namespace {

using namespace mpibatch::store_support;

class StoreLock : public StoreTest {};

TEST_F(StoreLock, SecondWriterIsRefusedNamingTheHolderReadersAreNot) {
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

TEST_F(StoreLock, StaleLockOfDeadProcessIsTakenOverForeignHostIsNot) {
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

// Right after kill -9 of a run, its rank 0 may take a second to go: a new
// writer waits a little for a live holder, and names one that stays.
TEST_F(StoreLock, AHolderThatGoesWithinSecondsIsWaitedForOneThatStaysIsNamed) {
  const auto path = dir / "s.h5";
  Store::open(path).close();
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  for (const int seconds : {1, 30}) {
    const pid_t child = ::fork();
    if (child == 0) {
      ::sleep(static_cast<unsigned>(seconds));
      ::_exit(0);
    }
    { std::ofstream(Store::sidecar(path) / "LOCK") << host << " " << child << "\n"; }
    if (seconds == 1) {
      EXPECT_NO_THROW(Store::open(path).close());
    } else {
      try {
        Store::open(path);
        ADD_FAILURE() << "took the lock of a live process";
      } catch (const StoreLockedError& e) {
        EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(child)), std::string::npos)
            << e.what();
      }
      ::kill(child, SIGKILL);
    }
    ::waitpid(child, nullptr, 0);
  }
}

}  // namespace
