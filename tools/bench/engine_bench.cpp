// Engine benchmarks (BENCHMARKS.md quotes them with their commands).
//
//   engine_bench serial-sqrt N          serial loop of sqrt(x*x), no store
//   engine_bench sqrt N                 run() of sqrt(x*x) over N tasks, end to end with the store
//   engine_bench serial-pi N ORDER      serial loop of the Leibniz series, 10^ORDER terms a task
//   engine_bench pi N ORDER             run() of the same
//   engine_bench expo N MEAN_MS         tasks sleeping exponentially distributed times:
//                                       makespan against the ideal max(work / workers, longest)
//   engine_bench dispatch N BATCH       trivial tasks in fixed batches: batches per second
//                                       the master handles
// Run the MPI modes under mpirun; each prints "name value unit" lines from rank 0.
#include <time.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <ranges>
#include <string>
#include <thread>

#include "mpibatch/mpibatch.hpp"

namespace {

using namespace mpibatch;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID: steadier than wall
// time on a shared machine) or of the whole process (CLOCK_PROCESS_CPUTIME_ID).
double cpu_seconds(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Out of line, so that the serial loop and the jobs run the very same code.
[[gnu::noinline]] double leibniz(int order) {
  const long long terms = 1LL;
  long long n = terms;
  for (int i = 0; i < order; ++i) n *= 10;
  double sum = 0;
  for (long long k = 0; k < n; ++k)
    sum += (k % 2 == 0 ? 4.0 : -4.0) / static_cast<double>(2 * k + 1);
  return sum;
}

void print(const char* name, double value, const char* unit) {
  std::printf("%-40s %14.4f %s\n", name, value, unit);
  std::fflush(stdout);
}

std::filesystem::path fresh_store(const std::string& name) {
  const auto p = std::filesystem::temp_directory_path() / ("engine_bench_" + name + ".h5");
  std::error_code ec;
  std::filesystem::remove(p, ec);
  std::filesystem::remove_all(Store::sidecar(p), ec);
  return p;
}

RunOptions options(const std::string& name) {
  RunOptions o;
  o.store = fresh_store(name);
  o.progress = ProgressMode::none;
  o.compact = false;  // compaction is timed apart (store_bench)
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Environment env(argc, argv);
  const std::string mode = argc > 1 ? argv[1] : "";
  const std::uint64_t n = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1000000;
  const bool root = env.rank() == 0;
  const int workers = std::max(1, env.size() - 1);

  if (mode == "serial-sqrt") {
    const auto t0 = Clock::now();
    double sum = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
      const double x = static_cast<double>(i);
      sum += std::sqrt(x * x);
    }
    print("serial sqrt(x*x)", static_cast<double>(n) / since(t0), "tasks/s");
    return sum < 0;
  }
  if (mode == "sqrt") {
    const Job<double, double> job{.name = "sqrt",
                                  .fn = [](const double& x) { return std::sqrt(x * x); }};
    const auto t0 = Clock::now();
    const double c0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
    const RunSummary s =
        run(env, job,
            std::views::iota(std::uint64_t{0}, n) |
                std::views::transform([](std::uint64_t i) { return static_cast<double>(i); }),
            options("sqrt"));
    if (root) {
      print("run sqrt(x*x), end to end with the store", static_cast<double>(n) / since(t0),
            "tasks/s");
      print("  computed", static_cast<double>(s.computed), "tasks");
      // Rank 0's own thread is the bottleneck for tiny tasks (its store threads excluded).
      print("  rank 0 main thread CPU per task",
            1e9 * (cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - c0) / static_cast<double>(n), "ns");
    }
    return 0;
  }
  const int order = argc > 3 ? std::atoi(argv[3]) : 6;
  // The order rides in the input (plus 1000 * task index, so keys differ).
  const Job<int, double> pi_job{.name = "pi", .fn = [](const int& i) { return leibniz(i % 1000); }};
  if (mode == "serial-pi") {  // the same function on the same inputs, in a plain loop
    const auto t0 = Clock::now();
    double sum = 0;
    for (std::uint64_t i = 0; i < n; ++i) sum += pi_job.fn(static_cast<int>(i * 1000 + order));
    const double t = since(t0);
    print("serial pi: seconds", t, "s");
    print("serial pi: per task", t / static_cast<double>(n), "s");
    return sum < 0;
  }
  if (mode == "pi") {
    const auto t0 = Clock::now();
    const double c0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
    run(env, pi_job,
        std::views::iota(std::uint64_t{0}, n) | std::views::transform([order](std::uint64_t i) {
          return static_cast<int>(i * 1000 + order);
        }),
        options("pi"));
    if (root) {
      print("run pi: seconds", since(t0), "s");
      // What rank 0 takes from the cores the workers share with it.
      print("  rank 0 CPU, all its threads", cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0, "s");
    }
    return 0;
  }
  if (mode == "expo") {
    const double mean_ms = argc > 3 ? std::atof(argv[3]) : 20;
    // Durations drawn up front (seeded) so the ideal is known exactly.
    std::mt19937_64 rng(42);
    std::exponential_distribution<double> dist(1.0 / mean_ms);
    std::vector<double> ms(n);
    double total = 0, longest = 0;
    for (auto& m : ms) {
      m = dist(rng);
      total += m;
      longest = std::max(longest, m);
    }
    const Job<std::uint64_t, std::uint64_t> job{
        .name = "expo", .fn = [&ms](const std::uint64_t& i) {
          std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms[i]));
          return i;
        }};
    const auto t0 = Clock::now();
    run(env, job, std::views::iota(std::uint64_t{0}, n), options("expo"));
    if (root) {
      const double makespan = since(t0);
      const double ideal = std::max(total / 1000 / workers, longest / 1000);
      print("expo: makespan", makespan, "s");
      print("expo: ideal max(work/workers, longest)", ideal, "s");
      print("expo: makespan / ideal", makespan / ideal, "");
    }
    return 0;
  }
  if (mode == "dispatch") {
    RunOptions o = options("dispatch");
    o.batch = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1;
    const Job<std::uint64_t, std::uint64_t> job{.name = "nop",
                                                .fn = [](const std::uint64_t& i) { return i; }};
    const auto t0 = Clock::now();
    run(env, job, std::views::iota(std::uint64_t{0}, n), o);
    if (root) {
      const double t = since(t0);
      const double batches = static_cast<double>(n) / static_cast<double>(o.batch);
      print("dispatch: batches per second", batches / t, "batches/s");
      print("dispatch: workers fed at 0.2 s per batch", batches / t * 0.2, "workers");
    }
    return 0;
  }
  if (root) {
    std::fprintf(stderr,
                 "usage: engine_bench serial-sqrt|sqrt|serial-pi|pi|expo|dispatch N [ARG]\n");
  }
  return 2;
}
