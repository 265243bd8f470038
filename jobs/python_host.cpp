#include "python_host.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace mpibatch::jobs {

namespace {

namespace fs = std::filesystem;

// Loads the module named by argv[1] (with RTLD_GLOBAL, as mpi4py loads MPI:
// Open MPI's plugins resolve its symbols) and runs the command line after it,
// with the signal dispositions of the embedded interpreter (which installs no
// handlers): python3's would turn a stop signal into KeyboardInterrupt.
constexpr char kBootstrap[] =
    "import importlib.util, os, signal, sys\n"
    "for s in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ):\n"
    "    signal.signal(s, signal.SIG_DFL)\n"
    "flags = sys.getdlopenflags()\n"
    "sys.setdlopenflags(flags | os.RTLD_GLOBAL)\n"
    "spec = importlib.util.spec_from_file_location('_mpibatch_python', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "sys.setdlopenflags(flags)\n"
    "args, sys.argv = sys.argv[2:], ['']\n"
    "sys.exit(module.main(args))\n";

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

}  // namespace

void host_python_job(int argc, char** argv) {
  if (argc < 3 || std::string_view(argv[1]) != "run" || std::string_view(argv[2]) != "python")
    return;
  if (std::getenv(kEmbedPythonEnv) != nullptr || std::string_view(MPIBATCH_PYTHON_MODULE).empty())
    return;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return;
  const std::string module = find_module(self);
  if (module.empty() || ::access(MPIBATCH_PYTHON3, X_OK) != 0) return;
  std::vector<std::string> words = {MPIBATCH_PYTHON3, "-c", kBootstrap, module, self.string()};
  for (int i = 1; i < argc; ++i) words.emplace_back(argv[i]);
  std::vector<char*> args;
  for (auto& w : words) args.push_back(w.data());
  args.push_back(nullptr);
  ::execv(MPIBATCH_PYTHON3, args.data());  // returns only when it failed: run embedded
}

}  // namespace mpibatch::jobs
