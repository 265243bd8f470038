// The python job's ranks run in Debian's python3 rather than in the
// interpreter the command embeds: python3 links the same interpreter with
// link-time optimization, so pure Python code runs a few percent faster there
// (BENCHMARKS.md). The command execs python3 before MPI starts, and python3
// loads the command's run verb as an extension module (python_module.cpp).
#pragma once

namespace mpibatch::jobs {

// Set (to anything but "" or 0): the python job runs in the command's own
// interpreter.
inline constexpr char kEmbedPythonEnv[] = "MPIBATCH_EMBED_PYTHON";

// For `run python ...` (unless kEmbedPythonEnv is set): replaces this
// process with python3 running the same command line in the extension
// module. Returns when it does not apply, or when python3 or the module is
// not found or cannot be started (the command then runs the job embedded).
// Call first in main(), before MPI is initialized.
void host_python_job(int argc, char** argv);

}  // namespace mpibatch::jobs
