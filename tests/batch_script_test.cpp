// The batch script `mpibatch submit` writes, checked directly and by bash.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <tuple>

#include "cli/submit.hpp"
#include "mpibatch/error.hpp"
#include "test_support.hpp"

namespace {

using mpibatch::detail::batch_script;
using mpibatch::detail::slurm_seconds;
using mpibatch::detail::SubmitArgs;

SubmitArgs args() {
  SubmitArgs a;
  a.store = "/data/my store.h5";
  a.ntasks = "64";
  a.time = "1:00:00";
  a.chain = 3;
  a.run_argv = {"/opt/mpibatch/bin/mpibatch", "run", "exec", "--cmd", "echo 'it''s' {f} $HOME"};
  return a;
}

bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(BatchScript, SlurmLinesChainAndEveryWordQuotedOnce) {
  const std::string s = batch_script(args(), "/data/my store.h5.sbatch");
  EXPECT_TRUE(s.starts_with("#!/bin/bash\n"));
  EXPECT_TRUE(has(s, "#SBATCH --ntasks=64\n"));
  EXPECT_TRUE(has(s, "#SBATCH --time=1:00:00\n"));
  EXPECT_FALSE(has(s, "#SBATCH --nodes"));  // not given, not set
  EXPECT_TRUE(has(s, "#SBATCH --signal=B:USR1@90\n"));
  EXPECT_TRUE(has(s, "chain=${MPIBATCH_CHAIN:-3}\n"));
  EXPECT_TRUE(has(s, "store='/data/my store.h5'\n"));
  // srun by default; the template stays one word, its quotes and $ untouched.
  EXPECT_TRUE(has(s,
                  "srun --mpi=pmix --kill-on-bad-exit=1 '/opt/mpibatch/bin/mpibatch' 'run' 'exec' "
                  "'--cmd' "
                  "'echo '\\''it'\\'''\\''s'\\'' {f} $HOME' &\n"))
      << s;
  SubmitArgs m = args();
  m.launcher = "mpirun";
  const std::string t = batch_script(m, "/x.sbatch");
  EXPECT_TRUE(has(t, "export OMPI_ALLOW_RUN_AS_ROOT=1"));
  EXPECT_TRUE(has(t, "\nmpirun '/opt/mpibatch/bin/mpibatch' 'run'"));
}

TEST(BatchScript, BashParsesItAndGivesTheCommandItsWordsBack) {
  mpibatch::test_support::TempDir dir;
  const std::string path = (dir / "job.sbatch").string();
  std::ofstream(path) << batch_script(args(), path);
  EXPECT_EQ(std::system(("bash -n '" + path + "'").c_str()), 0);
  // The launch line, with srun replaced by printf, prints each word on its own line.
  const std::string probe = (dir / "probe.sh").string();
  std::ofstream(probe) << "srun() { shift 2; printf '%s\\n' \"$@\"; }\n"
                       << "eval \"$(grep '^srun ' '" << path << "' | sed 's/ &$//')\"\n";
  std::FILE* p = ::popen(("bash '" + probe + "'").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  EXPECT_EQ(::pclose(p), 0);
  EXPECT_EQ(out, "/opt/mpibatch/bin/mpibatch\nrun\nexec\n--cmd\necho 'it''s' {f} $HOME\n");
}

// As an HPC admin writes it: a job name squeue tells apart, any sbatch
// option, setup lines, relative paths as at submit time, and a drained link
// that resubmitted is not a failure.
TEST(BatchScript, SlurmConventions) {
  SubmitArgs a = args();
  a.sbatch = {"--mem=4G", "--qos=debug", "--mail-type=FAIL"};
  a.setup = {"module load hdf5", "source ~/venv/bin/activate"};
  a.workdir = "/home/me/my runs";
  const std::string s = batch_script(a, "/data/my store.h5.sbatch");
  EXPECT_TRUE(has(s, "#SBATCH --job-name=mpibatch-exec-my_store\n")) << s;
  EXPECT_TRUE(has(s, "#SBATCH --mem=4G\n#SBATCH --qos=debug\n#SBATCH --mail-type=FAIL\n"));
  // Every #SBATCH line comes before the first command (sbatch stops reading them there).
  EXPECT_LT(s.rfind("#SBATCH"), s.find("\nstore="));
  EXPECT_TRUE(
      has(s, "cd '/home/me/my runs' || exit 1\nmodule load hdf5\nsource ~/venv/bin/activate\n"));
  EXPECT_LT(s.find("module load"), s.find("srun "));
  // Resubmitted after a drain: exit 0; after a rank died (above 4): resubmitted too, and
  // its status kept; the chain used up with tasks pending: says how to go on, exits 3.
  EXPECT_TRUE(
      has(s, "resubmitted as job $next\"\n      if [ \"$status\" -eq 3 ]; then status=0; fi\n"));
  EXPECT_TRUE(has(s, "if [ \"$status\" -eq 3 ] || [ \"$status\" -gt 4 ]; then\n"));
  EXPECT_TRUE(has(s, "no resubmissions left; continue with: sbatch"));
  a.job_name = "sweep 7";
  EXPECT_TRUE(has(batch_script(a, "/x.sbatch"), "#SBATCH --job-name=sweep_7\n"));
}

TEST(BatchScript, TheScriptsBranchesRunUnderBash) {
  // The end of the script, run with status 3 and fake sbatch and status: a link that
  // resubmits exits 0, the last link (chain 0) exits 3 and says how to continue.
  mpibatch::test_support::TempDir dir;
  const std::string path = (dir / "job.sbatch").string();
  std::string s = batch_script(args(), path);
  s = s.substr(s.find("# Stopped early"));
  for (const auto& [chain, want_status, want_text] :
       {std::tuple{2, 0, "resubmitted as job 4242"}, std::tuple{0, 3, "no resubmissions left"}}) {
    std::ofstream(path) << "sbatch() { echo 4242; }\nprogress() { echo 7; }\nbefore=3\nstatus=3\n"
                        << "script=" << path << "\nchain=" << chain << "\n"
                        << s;
    std::FILE* p = ::popen(("bash '" + path + "' 2>&1").c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[256];
    while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
    const int rc = ::pclose(p);
    EXPECT_EQ(WEXITSTATUS(rc), want_status) << out;
    EXPECT_TRUE(has(out, want_text)) << out;
  }
}

TEST(BatchScript, SlurmTimeFormats) {
  EXPECT_EQ(slurm_seconds("30"), 1800);
  EXPECT_EQ(slurm_seconds("1:30"), 90);
  EXPECT_EQ(slurm_seconds("1:00:00"), 3600);
  EXPECT_EQ(slurm_seconds("2-00:00:00"), 172800);
  EXPECT_EQ(slurm_seconds("1-2"), 93600);
  EXPECT_EQ(slurm_seconds("1-0:30"), 88200);
  for (const char* bad : {"", "1h", "1:2:3:4", "-1", "x-1", "1-", "1::2"})
    EXPECT_THROW(slurm_seconds(bad), mpibatch::UsageError) << bad;
}

TEST(BatchScript, ATimeTooShortForTheWarningOrAMultiLineOptionIsRefused) {
  SubmitArgs a = args();
  a.dry_run = true;
  a.time = "1";  // 60 s, the warning 90 s before the end
  try {
    mpibatch::detail::submit(a);
    ADD_FAILURE() << "submitted a job with no time to work";
  } catch (const mpibatch::UsageError& e) {
    EXPECT_TRUE(has(e.what(), "--time 1 (60 s) leaves no time to work before --warn 90 s"))
        << e.what();
  }
  a.time = "3";
  a.sbatch = {"--mem=4G\nrm -rf ~"};
  EXPECT_THROW(mpibatch::detail::submit(a), mpibatch::UsageError);
  a.sbatch = {"mem=4G"};
  EXPECT_THROW(mpibatch::detail::submit(a), mpibatch::UsageError);
}

}  // namespace
