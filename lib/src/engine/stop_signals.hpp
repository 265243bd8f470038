// SIGINT, SIGTERM and SIGUSR1 (what Ctrl-C, mpirun, scancel and Slurm's
// warning send) ask the run to stop: the first one to drain and commit, a
// second one to stop at once. Workers only count them (the master decides),
// so that a task whose own work a stop signal cut short can say so
// (stop_signalled(), InterruptedError).
#pragma once

namespace mpibatch::detail {

class StopSignals {
 public:
  // Counts the signals (with SA_RESTART: calls in progress go on); only the
  // master acts on the count. Restores the previous handlers when destroyed.
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  int count() const;
};

// Once a stop has cut a task short in this process (InterruptedError), the
// rest of the run's tasks here are not started: the run is stopping, and
// they would be cut short too. Reset by each StopSignals. Thread-safe.
void note_interrupted();
bool tasks_interrupted();

}  // namespace mpibatch::detail
