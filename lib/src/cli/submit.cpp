#include "cli/submit.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "cli/values.hpp"
#include "cli/verbs.hpp"
#include "mpibatch/error.hpp"

namespace mpibatch::detail {

namespace {

// 'word' for the shell, whatever it holds.
std::string quote(const std::string& word) {
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

bool on_path(const char* program) {
  const std::string cmd = std::string("command -v ") + program + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

}  // namespace

std::string batch_script(const SubmitArgs& a, const std::string& path) {
  std::string cmd;
  for (const auto& w : a.run_argv) {
    if (!cmd.empty()) cmd += ' ';
    cmd += quote(w);
  }
  const std::string mpibatch = quote(a.run_argv.at(0));
  std::string s =
      "#!/bin/bash\n# Written by mpibatch submit: kept next to the store, so you can see what "
      "ran.\n";
  s += "#SBATCH --job-name=mpibatch\n";
  if (!a.nodes.empty()) s += "#SBATCH --nodes=" + a.nodes + "\n";
  if (!a.ntasks.empty()) s += "#SBATCH --ntasks=" + a.ntasks + "\n";
  if (!a.time.empty()) s += "#SBATCH --time=" + a.time + "\n";
  if (!a.partition.empty()) s += "#SBATCH --partition=" + a.partition + "\n";
  if (!a.account.empty()) s += "#SBATCH --account=" + a.account + "\n";
  s += "# USR1 to this script " + std::to_string(a.warn) +
       " s before the time limit: the run stops dispatching, collects what is\n"
       "# in flight, commits and exits with status 3 (resumable) before Slurm kills it.\n";
  s += "#SBATCH --signal=B:USR1@" + std::to_string(a.warn) + "\n";
  s += "#SBATCH --output=" + a.store + ".slurm-%j.out\n#SBATCH --open-mode=append\n\n";
  s += "store=" + quote(a.store) + "\nscript=" + quote(path) + "\nchain=${MPIBATCH_CHAIN:-" +
       std::to_string(a.chain) + "}\n";
  s += "done_tasks() { " + mpibatch +
       " status \"$store\" --json 2>/dev/null | sed -n 's/.*\"done\":\\([0-9]*\\).*/\\1/p'; }\n";
  s += "before=$(done_tasks); before=${before:-0}\n\n";
  if (a.launcher == "mpirun") {
    s += "# mpirun as root needs these; it forwards USR1 to the ranks.\n"
         "export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1\n"
         "mpirun " +
         cmd + " &\n";
  } else {
    s += "srun --mpi=pmix " + cmd + " &\n";
  }
  s += "pid=$!\n"
       "# A trap runs only between commands: the run is in the background and we wait for it.\n"
       "trap 'echo \"mpibatch: time limit near, stopping the run\"; kill -USR1 $pid' USR1\n"
       "wait $pid; status=$?\n"
       "while kill -0 $pid 2>/dev/null; do wait $pid; status=$?; done\n\n"
       "if [ \"$status\" -eq 3 ] && [ \"$chain\" -gt 0 ]; then\n"
       "  after=$(done_tasks); after=${after:-0}\n"
       "  if [ \"$after\" -gt \"$before\" ]; then\n"
       "    next=$(sbatch --parsable --export=ALL,MPIBATCH_CHAIN=$((chain - 1)) "
       "--dependency=afterany:$SLURM_JOB_ID \"$script\")\n"
       "    echo \"mpibatch: $((after - before)) tasks done in this job; resubmitted as job "
       "$next\"\n"
       "  else\n"
       "    echo \"mpibatch: no task finished in this job: not resubmitting\"\n"
       "  fi\n"
       "fi\n"
       "exit $status\n";
  return s;
}

int submit(const SubmitArgs& a) {
  if (a.launcher != "srun" && a.launcher != "mpirun") {
    throw UsageError("--launcher '" + a.launcher + "': use srun or mpirun");
  }
  if (a.chain < 0) throw UsageError("--chain must be >= 0");
  const std::string path = a.store + ".sbatch";
  const std::string text = batch_script(a, path);
  if (a.dry_run) {
    std::fputs(text.c_str(), stdout);
    return kExitOk;
  }
  if (!on_path("sbatch")) {
    throw UsageError(
        "sbatch is not on the PATH: submit needs Slurm (use 'mpibatch run' under mpirun instead)");
  }
  {
    std::ofstream out(path);
    out << text;
    if (!out) throw IoError("cannot write " + path);
  }
  const std::string cmd = "sbatch --parsable " + quote(path);
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) throw IoError("cannot run sbatch");
  char buf[256] = {};
  const bool got = std::fgets(buf, sizeof buf, p) != nullptr;
  const int rc = ::pclose(p);
  if (rc != 0 || !got)
    throw Error("sbatch " + path + " failed (status " + std::to_string(rc) + ")");
  std::string id = buf;
  while (!id.empty() && (id.back() == '\n' || id.back() == '\r')) id.pop_back();
  std::printf("%s\n", id.c_str());
  std::fprintf(stderr, "mpibatch submit: job %s runs %s; watch it with: mpibatch status %s\n",
               id.c_str(), path.c_str(), a.store.c_str());
  return kExitOk;
}

double slurm_time_left() {
  const char* id = std::getenv("SLURM_JOB_ID");
  if (id == nullptr || !on_path("squeue")) return -1;
  const std::string cmd = std::string("squeue -h -j ") + quote(id) + " -o %L 2>/dev/null";
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[64] = {};
  const bool got = std::fgets(buf, sizeof buf, p) != nullptr;
  ::pclose(p);
  std::string left = got ? buf : "";
  while (!left.empty() && (left.back() == '\n' || left.back() == ' ')) left.pop_back();
  if (left.empty() || left == "UNLIMITED" || left == "NOT_SET" || left == "INVALID") return -1;
  try {
    return parse_duration(left, "squeue time left");
  } catch (const Error&) {
    return -1;
  }
}

// `submit`: the same command line as `run`, less submit's own options,
// with an absolute store path; mpibatch itself by its absolute path.
int do_submit(const RunArgs& ra, SubmitArgs sa, int argc, char** argv) {
  find_command_job(ra.job);
  const std::string store =
      std::filesystem::absolute(ra.store.empty() ? ra.job + ".h5" : ra.store).string();
  sa.store = store;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  sa.run_argv = {ec ? std::string(argv[0]) : self.string(), "run"};
  static const std::vector<std::string> kValued{"--nodes",     "--ntasks",   "--time",
                                                "--partition", "--account",  "--chain",
                                                "--warn",      "--launcher", "--store"};
  bool after_verb = false;
  for (int i = 1; i < argc; ++i) {
    const std::string w = argv[i];
    if (!after_verb) {
      after_verb = w == "submit";
      continue;
    }
    bool skip = w == "--dry-run";
    for (const auto& v : kValued) {
      if (w == v) {
        skip = true;
        ++i;  // and its value
      } else if (w.rfind(v + "=", 0) == 0) {
        skip = true;
      }
    }
    if (!skip) sa.run_argv.push_back(w);
  }
  sa.run_argv.push_back("--store");
  sa.run_argv.push_back(store);
  return submit(sa);
}

}  // namespace mpibatch::detail
