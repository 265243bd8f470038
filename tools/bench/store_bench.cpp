// Store throughput: append + commit, batch lookup, open time, index memory.
// Usage: store_bench [RECORDS] [DIR] [SEGMENT_RECORDS]
//        (defaults: 10,000,000 records, the temp folder, the store's default)
// Prints one "name value unit" line per figure; BENCHMARKS.md quotes them.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "mpibatch/store.hpp"

namespace {

using namespace mpibatch;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Resident memory of this process in bytes.
double rss_bytes() {
  std::ifstream in("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  in >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

// Unique, uniformly spread keys like XXH3's, without hashing (we time the store).
std::uint64_t mix(std::uint64_t x) {  // splitmix64's finalizer: a bijection
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
TaskKey bench_key(std::uint64_t i) {
  return TaskKey{mix(i ^ 0x5555), mix(i)};
}

const JobInfo kJob{"bench",
                   1,
                   "store benchmark",
                   {{"i", FieldType::int64, "", ""}},
                   {{"y", FieldType::float64, "", ""}}};

Record make_record(std::uint64_t i) {
  Record r;
  r.key = bench_key(i);
  r.job = "bench";
  const double y = static_cast<double>(i) * 0.5;
  r.result = to_bytes(y);
  r.values = {y};
  r.params = {static_cast<std::int64_t>(i)};
  r.start_time = 1.7e9;
  r.duration = 1e-6;
  r.run = 1;
  return r;
}

void print(const char* name, double value, const char* unit) {
  std::printf("%-34s %14.3f %s\n", name, value, unit);
  std::fflush(stdout);
}

double thread_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 10'000'000;
  const std::filesystem::path dir = argc > 2 ? argv[2] : std::filesystem::temp_directory_path();
  StoreOptions options;
  if (argc > 3) options.segment_records = std::strtoull(argv[3], nullptr, 10);
  const auto path = dir / "store_bench.h5";
  std::error_code ec;
  std::filesystem::remove(path, ec);
  std::filesystem::remove_all(Store::sidecar(path), ec);

  try {
    // Append in batches of 10,000 (as the engine does), commit every second.
    {
      Store s = Store::open(path, options);
      s.define_job(kJob);
      std::vector<Record> batch;
      const auto t0 = Clock::now();
      auto last_commit = t0;
      std::uint64_t commits = 0;
      double make_time = 0, commit_time = 0, append_cpu = 0;
      for (std::uint64_t i = 0; i < n; i += 10'000) {
        const auto tm = Clock::now();
        batch.clear();
        for (std::uint64_t j = i; j < std::min(n, i + 10'000); ++j) batch.push_back(make_record(j));
        make_time += seconds_since(tm);
        const double c0 = thread_cpu_seconds();
        s.append(std::move(batch));
        append_cpu += thread_cpu_seconds() - c0;
        if (seconds_since(last_commit) >= 1.0) {
          const auto tc = Clock::now();
          s.commit();
          commit_time += seconds_since(tc);
          ++commits;
          last_commit = Clock::now();
        }
      }
      s.commit();
      // Making the records (and serializing their results) is the caller's work.
      const double t = seconds_since(t0) - make_time;
      print("append+commit (commit every 1 s)", static_cast<double>(n) / t, "records/s");
      // CPU time of the appending thread: steadier than wall time on a busy machine.
      print("  append() CPU time per record", append_cpu / static_cast<double>(n) * 1e9, "ns");
      print("  making the records (not counted)", make_time, "s");
      print("  commits", static_cast<double>(commits + 1), "");
      print("  time in commit (fdatasync, segments)", commit_time, "s");
      const auto tc = Clock::now();
      s.close();
      print("close (write last segment)", seconds_since(tc), "s");
    }
    {
      const double before = rss_bytes();
      const auto t0 = Clock::now();
      Store s = Store::open(path, {.read_only = true});
      print("open, uncompacted (segments)", seconds_since(t0), "s");
      print("  records", static_cast<double>(s.size()), "");
      print("  memory of the open store", (rss_bytes() - before) / (1 << 20), "MiB");
    }
    {
      Store s = Store::open(path);
      const auto t0 = Clock::now();
      s.compact();
      print("compact", seconds_since(t0), "s");
    }
    const double before = rss_bytes();
    const auto t0 = Clock::now();
    Store s = Store::open(path, {.read_only = true});
    print("open, compacted", seconds_since(t0), "s");
    print("  memory of the open store", (rss_bytes() - before) / (1 << 20), "MiB");
    print("  bytes per record in memory", (rss_bytes() - before) / static_cast<double>(n), "B");

    // Lookup: 10 million keys in batches of 100,000, half present, random order.
    const std::uint64_t queries = 10'000'000;
    std::mt19937_64 rng(42);
    std::vector<TaskKey> keys(100'000);
    std::vector<Lookup> out(keys.size());
    std::uint64_t found = 0;
    double lookup_time = 0;
    for (std::uint64_t q = 0; q < queries; q += keys.size()) {
      for (auto& k : keys) {
        const std::uint64_t i = rng() % (2 * n);  // i >= n is absent
        k = bench_key(i);
      }
      const auto tl = Clock::now();
      s.lookup(keys, out);
      lookup_time += seconds_since(tl);
      for (auto o : out) found += o == Lookup::ok;
    }
    print("batch lookup", static_cast<double>(queries) / lookup_time, "keys/s");
    print("  found", static_cast<double>(found) / static_cast<double>(queries), "fraction");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "store_bench: %s\n", e.what());
    return 1;
  }
  std::filesystem::remove(path, ec);
  std::filesystem::remove_all(Store::sidecar(path), ec);
  return 0;
}
