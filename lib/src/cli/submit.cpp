#include "cli/submit.hpp"

#include <cctype>
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
  return shell_word(word, true);
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
  std::string name = a.job_name;
  if (name.empty()) {  // squeue tells sweeps apart: the job and the store's name
    name = "mpibatch";
    if (a.run_argv.size() > 2) name += "-" + a.run_argv[2];
    name += "-" + std::filesystem::path(a.store).stem().string();
  }
  for (char& c : name)  // one word that #SBATCH parsing and squeue show as it is
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  s += "#SBATCH --job-name=" + name + "\n";
  if (!a.nodes.empty()) s += "#SBATCH --nodes=" + a.nodes + "\n";
  if (!a.ntasks.empty()) s += "#SBATCH --ntasks=" + a.ntasks + "\n";
  if (!a.time.empty()) s += "#SBATCH --time=" + a.time + "\n";
  if (!a.partition.empty()) s += "#SBATCH --partition=" + a.partition + "\n";
  if (!a.account.empty()) s += "#SBATCH --account=" + a.account + "\n";
  for (const auto& o : a.sbatch) s += "#SBATCH " + o + "\n";
  s += "# USR1 to this script " + std::to_string(a.warn) +
       " s before the time limit: the run stops dispatching, collects what is\n"
       "# in flight, commits and exits with status 3 (resumable) before Slurm kills it.\n";
  s += "#SBATCH --signal=B:USR1@" + std::to_string(a.warn) + "\n";
  s += "#SBATCH --output=" + a.store + ".slurm-%j.out\n#SBATCH --open-mode=append\n\n";
  s += "store=" + quote(a.store) + "\nscript=" + quote(path) + "\nchain=${MPIBATCH_CHAIN:-" +
       std::to_string(a.chain) + "}\n";
  // Relative paths of the run (--tasks, job options) mean what they meant at submit time,
  // wherever this script is submitted from later.
  if (!a.workdir.empty()) s += "cd " + quote(a.workdir) + " || exit 1\n";
  for (const auto& line : a.setup) s += line + "\n";
  s += "# Tasks done, plus crashes recorded (a task that crashes its worker twice is\n"
       "# quarantined, so links that only record crashes still lead to the end).\n"
       "progress() {\n  finished=$(" +
       mpibatch +
       " status \"$store\" --json 2>/dev/null | sed -n 's/.*\"done\":\\([0-9]*\\).*/\\1/p')\n"
       "  crashes=$(find \"$store.d/crashes\" -type f -size +0c 2>/dev/null | wc -l)\n"
       "  echo $(( ${finished:-0} + crashes ))\n}\n";
  s += "before=$(progress)\n\n";
  if (a.launcher == "mpirun") {
    s += "# mpirun as root needs these; it forwards USR1 to the ranks.\n"
         "export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1\n"
         "mpirun " +
         cmd + " &\n";
  } else {
    // A rank that dies ends the step (else rank 0 would wait for it for ever).
    s += "srun --mpi=pmix --kill-on-bad-exit=1 " + cmd + " &\n";
  }
  s += "pid=$!\n"
       "# A trap runs only between commands: the run is in the background and we wait for it.\n"
       "trap 'echo \"mpibatch: time limit near, stopping the run\"; kill -USR1 $pid' USR1\n"
       "wait $pid; status=$?\n"
       "while kill -0 $pid 2>/dev/null; do wait $pid; status=$?; done\n\n"
       "# Stopped early (3), or a rank died (above 4: a signal, a lost node; the store keeps\n"
       "# what was committed): resubmit while the chain lasts and the run progresses. A\n"
       "# drained link that resubmitted exits 0 (not a failure in sacct); one whose rank died\n"
       "# keeps its status; the last link's state tells the truth.\n"
       "if [ \"$status\" -eq 3 ] || [ \"$status\" -gt 4 ]; then\n"
       "  after=$(progress)\n"
       "  if [ \"$status\" -ne 3 ]; then\n"
       "    echo \"mpibatch: the run ended with status $status (a rank died or was killed)\"\n"
       "  fi\n"
       "  if [ \"$chain\" -le 0 ]; then\n"
       "    echo \"mpibatch: stopped with tasks pending and no resubmissions left; continue "
       "with: sbatch --export=ALL,MPIBATCH_CHAIN=N $script\"\n"
       "  elif [ \"$after\" -gt \"$before\" ]; then\n"
       "    if next=$(sbatch --parsable --export=ALL,MPIBATCH_CHAIN=$((chain - 1)) "
       "--dependency=afterany:$SLURM_JOB_ID \"$script\"); then\n"
       "      echo \"mpibatch: $((after - before)) tasks done or crashes recorded in this job; "
       "resubmitted as job $next\"\n"
       "      if [ \"$status\" -eq 3 ]; then status=0; fi\n"
       "    else\n"
       "      echo \"mpibatch: resubmitting failed; continue with: sbatch $script\"\n"
       "    fi\n"
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
  for (const auto& o : a.sbatch) {
    if (!o.starts_with("-") || o.find_first_of("\n\r") != std::string::npos)
      throw UsageError("--sbatch '" + shown(o) +
                       "': each sbatch option starts with - and is one line");
  }
  // The run needs time to work before Slurm's USR1 asks it to stop.
  constexpr long kLeast = 15;
  if (!a.time.empty() && slurm_seconds(a.time) < a.warn + kLeast)
    throw UsageError("--time " + a.time + " (" + std::to_string(slurm_seconds(a.time)) +
                     " s) leaves no time to work before --warn " + std::to_string(a.warn) +
                     " s: give --time at least " + std::to_string(a.warn + kLeast) +
                     " s, or a smaller --warn");
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

long slurm_seconds(const std::string& time) {
  auto bad = [&]() -> long {
    throw UsageError("--time '" + shown(time) +
                     "': use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS");
  };
  std::string rest = time;
  long days = 0;
  if (const auto dash = rest.find('-'); dash != std::string::npos) {
    try {
      std::size_t used = 0;
      days = std::stol(rest.substr(0, dash), &used);
      if (used != dash || days < 0) bad();
    } catch (const std::exception&) {
      bad();
    }
    rest = rest.substr(dash + 1);
  }
  std::vector<long> parts;
  std::size_t at = 0;
  while (at <= rest.size()) {
    const auto colon = std::min(rest.find(':', at), rest.size());
    const std::string p = rest.substr(at, colon - at);
    if (p.empty() || p.find_first_not_of("0123456789") != std::string::npos || p.size() > 9) bad();
    parts.push_back(std::stol(p));
    at = colon + 1;
  }
  if (parts.empty() || parts.size() > 3) bad();
  long s = 0;
  if (time.find('-') != std::string::npos) {  // days-hours[:minutes[:seconds]]
    const long mult[] = {3600, 60, 1};
    for (std::size_t i = 0; i < parts.size(); ++i) s += parts[i] * mult[i];
  } else if (parts.size() == 1) {  // minutes
    s = parts[0] * 60;
  } else if (parts.size() == 2) {  // minutes:seconds
    s = parts[0] * 60 + parts[1];
  } else {  // hours:minutes:seconds
    s = parts[0] * 3600 + parts[1] * 60 + parts[2];
  }
  return days * 86400 + s;
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
  sa.workdir = std::filesystem::current_path().string();
  for (const auto& words : sa.sbatch_words) {
    std::size_t at = 0;
    while ((at = words.find_first_not_of(' ', at)) != std::string::npos) {
      const auto end = std::min(words.find(' ', at), words.size());
      sa.sbatch.push_back(words.substr(at, end - at));
      at = end;
    }
  }
  static const std::vector<std::string> kValued{
      "--nodes",    "--ntasks", "--time",     "--partition", "--account",    "--chain", "--warn",
      "--launcher", "--store",  "--job-name", "--sbatch",    "--sbatch-arg", "--setup"};
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
