// csv_classify done serially in one process: csv_classify_serial IN.csv OUT.csv
#include <cstdio>

#include "builtin_jobs.hpp"
#include "mpibatch/error.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: csv_classify_serial IN.csv OUT.csv\n");
    return mpibatch::kExitUsage;
  }
  try {
    mpibatch::jobs::csv_classify_serial(argv[1], argv[2]);
  } catch (const mpibatch::Error& e) {
    std::fprintf(stderr, "csv_classify_serial: %s\n", e.what());
    return e.exit_status();
  }
  return 0;
}
