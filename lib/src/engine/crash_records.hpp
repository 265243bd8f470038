// Tasks that crash their worker. While a worker runs a task, a handler for
// the fatal signals (SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL) knows its key;
// if one is raised by the task itself, the handler writes the key and the
// signal, with async-signal-safe calls only, to the worker's own file
// STORE.d/crashes/run<R>-rank<N>, opened before any task ran. Kills from
// outside (SIGKILL, SIGTERM, a signal another process sent) leave no record.
// Rank 0 reads the records at the next start: a task recorded once runs
// alone; one recorded kQuarantineCrashes times is stored as failed and not
// run again (docs/ARCHITECTURE.md).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "mpibatch/task_key.hpp"

namespace mpibatch::detail {

inline constexpr int kQuarantineCrashes = 2;

struct Crashes {
  int count = 0;   // records naming the task
  int signal = 0;  // the latest one's
};
using CrashCounts = std::unordered_map<TaskKey, Crashes, TaskKeyHash>;

// For rank 0 of a run, holding the store's lock: creates STORE.d/crashes if
// missing, removes empty records (workers that ended without a crash), and
// counts the rest by task. A damaged record is named on stderr and skipped.
// Throws IoError when the folder cannot be made or read.
CrashCounts take_crash_records(const std::filesystem::path& store);
// The counts, changing nothing; none when there is no folder. Any process.
CrashCounts read_crash_records(const std::filesystem::path& store);
// Removes the records naming any of keys (a clear of their results).
void forget_crash_records(const std::filesystem::path& store,
                          const std::unordered_set<TaskKey, TaskKeyHash>& keys);
// STORE.d/crashes as every rank must find it: "DEV INODE ABSOLUTE-PATH"
// ("" when it cannot be opened).
std::string crash_folder(const std::filesystem::path& store);
// "crashed its worker: signal 11 (SIGSEGV), in 2 runs".
std::string crash_message(const Crashes& c);
// How every message of a task that crashed its worker begins.
inline constexpr char kCrashedPrefix[] = "crashed its worker: ";
// kCrashedPrefix, then "signal 11 (SIGSEGV)".
std::string crashed_by_signal(int signal);

// The recording side: at most one per process, on a computing rank, while it
// computes. Tasks are recorded on one thread (crash_record_this_thread).
class CrashRecorder {
 public:
  // Creates the record file (O_EXCL, not following links) in the folder
  // rank 0 named (crash_folder) and installs the handlers, chaining to those
  // before (Open MPI prints a backtrace). Never throws: when the folder
  // cannot be reached, or is another one than rank 0's, error() says why and
  // nothing is recorded.
  CrashRecorder(const std::string& folder_id, std::int64_t run, int rank);
  CrashRecorder(const CrashRecorder&) = delete;
  CrashRecorder& operator=(const CrashRecorder&) = delete;
  // Restores the handlers; removes the (empty) file when finished() was called.
  ~CrashRecorder();
  const std::string& error() const { return error_; }
  // The rank is done computing: nothing crashed, the record is not needed.
  void finished() { finished_ = true; }

 private:
  int folder_ = -1;
  std::string name_;
  std::string error_;
  bool finished_ = false;
};

// Makes the calling thread the one whose tasks are recorded (the recorder's
// own thread until then), with an alternate signal stack.
void crash_record_this_thread();
// Around each task; crash_recording() is false but on that thread.
bool crash_recording();
void crash_task_begin(const TaskKey& key);
void crash_task_end();

}  // namespace mpibatch::detail
