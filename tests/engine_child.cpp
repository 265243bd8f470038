// A run for the process tests (signals, kill -9): tasks 0..N-1 each sleep,
// append their index to SIDE_FILE (to count how often each ran) and return
// 3*i. Exits with the run's exit status.
// Usage: engine_child STORE N SLEEP_US SIDE_FILE [TIME_LIMIT GRACE]
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ranges>
#include <string>
#include <thread>

#include "mpibatch/mpibatch.hpp"

int main(int argc, char** argv) {
  using namespace mpibatch;
  Environment env(argc, argv);
  if (argc != 5 && argc != 7) {
    std::fprintf(stderr, "usage: engine_child STORE N SLEEP_US SIDE_FILE [TIME_LIMIT GRACE]\n");
    return kExitUsage;
  }
  const std::uint64_t n = std::strtoull(argv[2], nullptr, 10);
  const long sleep_us = std::atol(argv[3]);
  const std::string side = argv[4];
  const Job<std::uint64_t, std::uint64_t> job{
      .name = "slow", .fn = [&](const std::uint64_t& i) {
        std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
        const std::string line = std::to_string(i) + "\n";
        const int fd = ::open(side.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0 || ::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
          throw std::runtime_error("cannot write " + side);
        }
        ::close(fd);
        return 3 * i;
      }};
  RunOptions o;
  o.store = argv[1];
  o.checkpoint_seconds = 0.5;
  o.batch_seconds = 0.05;
  o.progress = ProgressMode::log;
  if (argc == 7) {
    o.time_limit = std::atof(argv[5]);
    o.grace = std::atof(argv[6]);
  }
  const RunSummary s = run(env, job, std::views::iota(std::uint64_t{0}, n), o);
  if (env.rank() == 0) {
    std::printf("summary %s computed=%llu cached=%llu failed=%llu\n", to_string(s.state),
                static_cast<unsigned long long>(s.computed),
                static_cast<unsigned long long>(s.cached),
                static_cast<unsigned long long>(s.failed));
  }
  return s.exit_status;
}
