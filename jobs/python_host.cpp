#include "python_host.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace mpibatch::jobs {

namespace {

namespace fs = std::filesystem;

// argv: MODULE PROGRAM IGNORED WORDS... Loads MODULE (with RTLD_GLOBAL, as
// mpi4py loads MPI: Open MPI's plugins resolve its symbols) and runs the
// command line WORDS in it; when MODULE does not load, execs PROGRAM, the
// command, to run embedded. Signals get the dispositions the command had
// (IGNORED lists those it ignored): python3 ignores SIGPIPE and SIGXFSZ, and
// would turn SIGINT into KeyboardInterrupt.
std::string bootstrap() {
  return std::string() +
         "import os, signal, sys\n"
         "path, program, ignored = sys.argv[1], sys.argv[2], sys.argv[3].split(',')\n"
         "for s in (signal.SIGPIPE, signal.SIGXFSZ):\n"
         "    if str(int(s)) not in ignored:\n"
         "        signal.signal(s, signal.SIG_DFL)\n"
         "if signal.getsignal(signal.SIGINT) is signal.default_int_handler:\n"
         "    signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
         "words = [os.fsencode(a) for a in [program] + sys.argv[4:]]\n"
         "sys.argv = ['']\n"
         "try:\n"
         "    import importlib.util\n"
         "    flags = sys.getdlopenflags()\n"
         "    sys.setdlopenflags(flags | os.RTLD_GLOBAL)\n"
         "    spec = importlib.util.spec_from_file_location('_mpibatch_python', path)\n"
         "    module = importlib.util.module_from_spec(spec)\n"
         "    spec.loader.exec_module(module)\n"
         "    sys.setdlopenflags(flags)\n"
         "except Exception as e:\n"
         "    if os.environ.get('OMPI_COMM_WORLD_RANK', os.environ.get('PMIX_RANK', '0')) == '0':\n"
         "        print('mpibatch: warning: cannot load %s (%s): the python job runs in the '\n"
         "              'command\\'s own interpreter' % (path, e), file=sys.stderr)\n"
         "    os.environ['" +
         kEmbedPythonEnv +
         "'] = '1'\n"
         "    os.execv(program, words)\n"
         "sys.exit(module.main(words))\n";
}

// The module next to the command (the build tree) or in its install folder.
std::string find_module(const fs::path& self) {
  const fs::path dir = self.parent_path();
  for (const fs::path& p :
       {dir / MPIBATCH_PYTHON_MODULE,
        dir.parent_path() / MPIBATCH_INSTALL_LIBDIR / "mpibatch" / MPIBATCH_PYTHON_MODULE}) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return {};
}

// The signals among those python3 changes at start that this process ignores.
std::string ignored_signals() {
  std::string out;
  for (const int s : {SIGPIPE, SIGXFSZ}) {
    struct sigaction now {};
    if (::sigaction(s, nullptr, &now) == 0 && now.sa_handler == SIG_IGN)
      out += (out.empty() ? "" : ",") + std::to_string(s);
  }
  return out;
}

}  // namespace

void host_python_job(int argc, char** argv) {
  if (argc < 3 || std::string_view(argv[1]) != "run" || std::string_view(argv[2]) != "python")
    return;
  const char* embed = std::getenv(kEmbedPythonEnv);
  if ((embed != nullptr && *embed != '\0' && std::string_view(embed) != "0") ||
      std::string_view(MPIBATCH_PYTHON_MODULE).empty())
    return;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return;
  const std::string module = find_module(self);
  if (module.empty() || ::access(MPIBATCH_PYTHON3, X_OK) != 0) return;
  // -P: the working directory is not put first on sys.path by python3, but
  // by the job, as embedded (an absolute path, whatever a task does).
  std::vector<std::string> words = {
      MPIBATCH_PYTHON3, "-P", "-c", bootstrap(), module, self.string(), ignored_signals()};
  for (int i = 1; i < argc; ++i) words.emplace_back(argv[i]);
  std::vector<char*> args;
  for (auto& w : words) args.push_back(w.data());
  args.push_back(nullptr);
  ::unsetenv("PYTHONINSPECT");             // python3 would stay at a prompt after the run
  ::execv(MPIBATCH_PYTHON3, args.data());  // returns only when it failed: run embedded
}

}  // namespace mpibatch::jobs
