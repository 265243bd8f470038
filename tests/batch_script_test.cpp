// The batch script `mpibatch submit` writes, checked directly and by bash.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "cli/submit.hpp"
#include "test_support.hpp"

namespace {

using mpibatch::detail::batch_script;
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
                  "srun --mpi=pmix '/opt/mpibatch/bin/mpibatch' 'run' 'exec' '--cmd' "
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
  std::ofstream(probe) << "srun() { shift; printf '%s\\n' \"$@\"; }\n"
                       << "eval \"$(grep '^srun ' '" << path << "' | sed 's/ &$//')\"\n";
  std::FILE* p = ::popen(("bash '" + probe + "'").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  EXPECT_EQ(::pclose(p), 0);
  EXPECT_EQ(out, "/opt/mpibatch/bin/mpibatch\nrun\nexec\n--cmd\necho 'it''s' {f} $HOME\n");
}

}  // namespace
