// The mpibatch command: the built-in jobs and the command line.
#include "builtin_jobs.hpp"
#include "mpibatch/command_line.hpp"

int main(int argc, char** argv) {
  mpibatch::jobs::register_builtin_jobs();
  return mpibatch::run_command_line(argc, argv);
}
