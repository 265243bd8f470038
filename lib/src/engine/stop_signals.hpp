// SIGINT, SIGTERM and SIGUSR1 (what Ctrl-C, mpirun, scancel and Slurm's
// warning send) ask the run to stop: the first one to drain and commit, a
// second one to stop at once. Workers ignore them: the master decides.
#pragma once

namespace mpibatch::detail {

class StopSignals {
 public:
  // master: count the signals; otherwise ignore them. Restores the previous
  // handlers when destroyed.
  explicit StopSignals(bool master);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  int count() const;
};

}  // namespace mpibatch::detail
