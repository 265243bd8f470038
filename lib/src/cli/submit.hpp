// `mpibatch submit`: a batch script next to the store, submitted with sbatch.
#pragma once

#include <string>
#include <vector>

namespace mpibatch::detail {

struct SubmitArgs {
  std::string store;  // absolute
  std::string nodes, ntasks, time, partition, account, launcher = "srun";
  int chain = 0;  // resubmissions allowed after a run that stopped early
  int warn = 90;  // seconds before the limit that Slurm sends USR1
  bool dry_run = false;
  std::vector<std::string> run_argv;      // the `mpibatch run ...` command line
  std::string job_name;                   // empty: mpibatch-JOB-STORE
  std::vector<std::string> sbatch;        // more sbatch options, each one #SBATCH line
  std::vector<std::string> sbatch_words;  // --sbatch values: split at spaces into sbatch
  std::vector<std::string> setup;         // shell lines run before the launch (module load ...)
  std::string workdir;                    // absolute: where relative paths of the run resolve
};

// Seconds in a Slurm --time value (minutes, minutes:seconds, hours:minutes:seconds,
// days-hours[:minutes[:seconds]]). Throws UsageError naming the option.
long slurm_seconds(const std::string& time);

// The batch script's text.
std::string batch_script(const SubmitArgs& a, const std::string& script_path);
// Writes the script, submits it (unless dry_run: prints it), returns the exit status.
int submit(const SubmitArgs& a);
// Seconds left in this Slurm job (squeue %L), or -1 outside Slurm or when unlimited.
double slurm_time_left();

}  // namespace mpibatch::detail
