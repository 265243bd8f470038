// The mpibatch command: its verbs and options, parsed with CLI11; each
// verb's work is in its own file (verbs.hpp).
#include "mpibatch/command_line.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <string_view>

#include "cli/verbs.hpp"
#include "core/reported.hpp"
#include "engine/isolated_compute.hpp"
#include "mpibatch/version.hpp"

namespace mpibatch {

namespace {

// Under mpirun or srun every rank parses the same command line: only the
// first prints what parsing says (help, version, a usage error).
bool first_process() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"})
    if (const char* v = std::getenv(name)) return std::string_view(v) == "0";
  return true;
}

}  // namespace

int run_command_line(int argc, char** argv) {
  CLI::App app{
      "mpibatch: run very large batches of independent tasks under MPI, with every result kept in "
      "a crash-safe HDF5 store that is also the cache.\nExit statuses: 0 done, 1 runtime error, "
      "2 bad usage or input, 3 stopped early (resumable), 4 tasks failed.",
      "mpibatch"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "mpibatch " MPIBATCH_VERSION);

  detail::RunArgs ra;
  auto* run = app.add_subcommand("run",
                                 "Run a job over tasks; rerun to resume.\nExample:\n  mpirun -n 3 "
                                 "mpibatch run pi --grid row=0..99 --param order=6 --store pi.h5");
  detail::add_run_options(run, ra);
  detail::SubmitArgs sa;
  auto* submit =
      app.add_subcommand("submit",
                         "Write a batch script next to the store and submit it with sbatch; it "
                         "stops before the time limit "
                         "and, with --chain, resubmits itself until every task is "
                         "done.\nExample:\n  mpibatch submit pi "
                         "--grid row=0..9999 --param order=7 --ntasks 64 --time 1:00:00 --chain 5");
  detail::add_run_options(submit, ra);
  submit->add_option("--nodes", sa.nodes, "Slurm --nodes");
  submit->add_option("--ntasks", sa.ntasks, "Slurm --ntasks (MPI ranks; rank 0 dispatches)");
  submit->add_option("--time", sa.time, "Slurm --time (e.g. 30, 1:00:00, 2-00:00:00)");
  submit->add_option("--partition", sa.partition, "Slurm --partition");
  submit->add_option("--account", sa.account, "Slurm --account");
  submit
      ->add_option("--chain", sa.chain,
                   "Resubmit up to K times while the run stops early and progresses")
      ->check(CLI::NonNegativeNumber);
  submit->add_option("--warn", sa.warn, "Ask Slurm for USR1 this many seconds before the limit")
      ->check(detail::seconds())
      ->capture_default_str();
  submit->add_option("--launcher", sa.launcher, "srun (srun --mpi=pmix) or mpirun")
      ->check(CLI::IsMember({"srun", "mpirun"}))
      ->capture_default_str();
  submit->add_flag("--dry-run", sa.dry_run, "Print the batch script; submit nothing");
  submit->add_option("--job-name", sa.job_name, "Slurm --job-name (default: mpibatch-JOB-STORE)");
  submit->add_option("--sbatch", sa.sbatch_words,
                     "More sbatch options, split at spaces (e.g. \"--mem=4G --qos=debug\"); "
                     "repeatable");
  submit->add_option("--sbatch-arg", sa.sbatch, "One more sbatch option, as it is; repeatable");
  submit->add_option("--setup", sa.setup,
                     "A shell line the script runs before the launch (e.g. \"module load "
                     "hdf5\"); repeatable");
  std::string store_path, format = "csv", out_file;
  std::int64_t run_id = 0;
  bool json = false;
  auto* status =
      app.add_subcommand("status",
                         "A store's latest run (or --run ID): totals, rate, ETA, ranks; "
                         "works while a run writes it.\nExample:\n  mpibatch status pi.h5 --json");
  status->add_option("store", store_path, "The store")->required();
  status->add_option("--run", run_id, "Run id (default: the latest)");
  status->add_flag("--json", json, "One JSON object");
  auto* exp = app.add_subcommand("export",
                                 "One row per task in task order: params, results, status, error.\n"
                                 "Example:\n  mpibatch export pi.h5 --format csv -o pi.csv");
  exp->add_option("store", store_path, "The store")->required();
  exp->add_option("--run", run_id, "Run id (default: the latest)");
  exp->add_option("--format", format, "csv or jsonl")
      ->check(CLI::IsMember({"csv", "jsonl"}))
      ->capture_default_str();
  exp->add_option("-o,--output", out_file, "Output file (default: standard output)");
  auto* report = app.add_subcommand(
      "report",
      "One self-contained HTML file (opens offline) showing a run: a timeline per rank, tasks "
      "per second, task durations, the slowest and failed tasks, the status figures.\n"
      "Example:\n  mpibatch report pi.h5 -o pi.html");
  report->add_option("store", store_path, "The store")->required();
  report->add_option("--run", run_id, "Run id (default: the latest)");
  report->add_option("-o,--output", out_file, "The HTML file to write (- for standard output)")
      ->required();
  int report_top = 20;
  report->add_option("--top", report_top, "Rows of the slowest and of the failed tasks' tables")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  auto* failed = app.add_subcommand(
      "failed",
      "The failed tasks, one line each with its message (exit status 4 when there are any).\n"
      "Example:\n  mpibatch failed pi.h5");
  failed->add_option("store", store_path, "The store")->required();
  bool failed_full = false;
  failed->add_flag("--json", json, "One JSON object a line: key, job, version, params, error");
  failed->add_flag("--full", failed_full, "Whole messages (else cut at 160 bytes)");
  auto* verify = app.add_subcommand(
      "verify",
      "Check every checksum, index and the store's view; say what is wrong and where.\n"
      "Example:\n  mpibatch verify pi.h5");
  verify->add_option("store", store_path, "The store")->required();
  auto* compact = app.add_subcommand(
      "compact",
      "Merge every table and log of the store into one table (runs merge by size).\n"
      "Example:\n  mpibatch compact pi.h5");
  compact->add_option("store", store_path, "The store")->required();
  int compact_level = 0;
  compact
      ->add_option("--compress", compact_level,
                   "Deflate (1-9, HDF5's own: h5py reads it) the new table")
      ->check(CLI::Range(0, 9));
  std::string clear_job;
  bool clear_failed = false;
  auto* clear =
      app.add_subcommand("clear",
                         "Remove results so that their tasks run again: all of them, a job's "
                         "(--job), the failed ones (--failed), or a job's failed ones.\n"
                         "Example:\n  mpibatch clear pi.h5 --failed");
  clear->add_option("store", store_path, "The store")->required();
  clear->add_option("--job", clear_job, "Only this job's results (every version)");
  clear->add_flag("--failed", clear_failed, "Only failed results");
  bool clear_dry = false, clear_yes = false;
  clear->add_flag("--dry-run", clear_dry, "Only say how many results would be removed");
  clear->add_flag("-y,--yes", clear_yes, "Do not ask on a terminal");
  app.add_subcommand(
      "jobs",
      "The jobs this program knows, with parameters and results.\nExample:\n  mpibatch jobs");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::ostream quiet(nullptr);
    const int rc = first_process() ? app.exit(e) : app.exit(e, quiet, quiet);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  try {
    if (run->parsed() || submit->parsed())
      detail::collect_job_options(run->parsed() ? run : submit, ra);
    if (run->parsed()) return detail::do_run(ra, argc, argv);
    if (submit->parsed()) return detail::do_submit(ra, sa, argc, argv);
    if (status->parsed()) return detail::do_status(store_path, run_id, json);
    if (exp->parsed()) return detail::do_export(store_path, run_id, format, out_file);
    if (report->parsed()) return detail::do_report(store_path, run_id, out_file, report_top);
    if (failed->parsed()) return detail::do_failed(store_path, json, failed_full);
    if (verify->parsed()) return detail::do_verify(store_path);
    if (clear->parsed())
      return detail::do_clear(store_path, clear_job, clear_failed, clear_dry, clear_yes);
    if (compact->parsed()) return detail::do_compact(store_path, compact_level);
    return detail::do_jobs();
  } catch (const Error& e) {
    if (!detail::error_reported()) std::fprintf(stderr, "mpibatch: %s\n", e.what());
    return e.exit_status();
  } catch (const std::exception& e) {
    if (!detail::error_reported()) std::fprintf(stderr, "mpibatch: %s\n", e.what());
    return kExitRuntime;
  }
}

int run_hosted_command_line(int argc, char** argv, const std::string& program) {
  detail::set_compute_program(program);
  return run_command_line(argc, argv);
}

}  // namespace mpibatch
