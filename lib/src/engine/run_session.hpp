// A run's store from its beginning to its end, on rank 0.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/crash_records.hpp"
#include "mpibatch/environment.hpp"
#include "mpibatch/job.hpp"
#include "mpibatch/run.hpp"

namespace mpibatch::detail {

class RunSession {
 public:
  // Opens (or creates) options.store, defines the job and records a new run
  // (command line, ranks, hosts, the Slurm job), committed before any work;
  // takes the crash records of earlier runs (take_crash_records).
  // Throws Error (StoreLockedError, a damaged store, ...).
  RunSession(const Environment& env, const JobInfo& job, const RunOptions& options,
             const std::vector<std::string>& hosts);
  // Ends the run as failed if neither end() nor abandon() was called.
  ~RunSession();
  RunSession(const RunSession&) = delete;
  RunSession& operator=(const RunSession&) = delete;

  Store& store() { return *store_; }
  // The tasks that crashed a worker, read when the session began.
  const CrashCounts& crashes() const { return crashes_; }
  std::int64_t run_id() const { return run_id_; }

  // Records how the run ended, merges the store's newer tables after a
  // finished run (when options.compact; a failed merge is reported, not
  // thrown: every result is in a table already) and closes the store.
  // Throws Error.
  void end(const RunSummary& summary);
  // After an error: records the run as failed and closes what it can.
  void abandon() noexcept;

 private:
  std::unique_ptr<Store> store_;
  std::int64_t run_id_ = 0;
  CrashCounts crashes_;
  bool compact_ = true;
  bool ended_ = false;
};

// Checks options; throws UsageError naming the bad one.
void validate(const RunOptions& options);

}  // namespace mpibatch::detail
