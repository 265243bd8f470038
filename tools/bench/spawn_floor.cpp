// The floor under `exec`: how long one command takes when nothing but
// posix_spawn and waitpid run it, back to back, in one process (what one
// worker does, minus mpibatch). Usage: spawn_floor N PROGRAM [ARG...]
// Prints the time per command and the rate two such loops reach at most.
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

extern char** environ;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: spawn_floor N PROGRAM [ARG...]\n");
    return 2;
  }
  const long n = std::atol(argv[1]);
  std::vector<char*> args(argv + 2, argv + argc);
  args.push_back(nullptr);
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
    pid_t pid = 0;
    if (::posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) {
      std::perror("posix_spawnp");
      return 1;
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  const double per = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                     static_cast<double>(n);
  std::printf("%-40s %10.3f ms\n", "per command, spawn to reaped", per * 1e3);
  std::printf("%-40s %10.1f commands/s\n", "at most, 2 workers", 2 / per);
  return 0;
}
