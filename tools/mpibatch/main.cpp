// The mpibatch command: the built-in jobs and the command line.
#include "builtin_jobs.hpp"
#include "mpibatch/command_line.hpp"
#include "python_host.hpp"

int main(int argc, char** argv) {
  mpibatch::jobs::host_python_job(argc, argv);
  mpibatch::jobs::register_builtin_jobs();
  return mpibatch::run_command_line(argc, argv);
}
