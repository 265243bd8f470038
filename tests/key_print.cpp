// Prints task_key(job, version, to_bytes(uint64 value)) as hex: the test
// compares it with the key computed in the test process.
#include <cstdio>
#include <cstdlib>

#include "mpibatch/serialization.hpp"
#include "mpibatch/task_key.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: key_print JOB VERSION VALUE\n");
    return 2;
  }
  const auto value = std::strtoull(argv[3], nullptr, 10);
  std::printf(
      "%s\n",
      mpibatch::task_key(argv[1], std::atoll(argv[2]), mpibatch::to_bytes(value)).hex().c_str());
  return 0;
}
