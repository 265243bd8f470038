// Appends demo records to a store forever, committing in batches of
// crash_batch_size, flushing segments often and compacting now and then, and
// prints "C <records committed>" after each commit. crash_test kills it with
// SIGKILL at random moments.
#include <cstdio>
#include <cstdlib>

#include "test_support.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: store_crash_writer STORE START\n");
    return 2;
  }
  using namespace mpibatch;
  const std::uint64_t start = std::strtoull(argv[2], nullptr, 10);
  try {
    Store s = Store::open(argv[1], {.segment_records = 700});
    s.define_job(test_support::demo_job());
    const auto run = s.begin_run(RunInfo{.command_line = "store_crash_writer"});
    std::uint64_t i = start;
    for (std::uint64_t c = 0;; ++c) {
      const std::uint64_t b = test_support::crash_batch_size(start, c);
      std::vector<TaskKey> keys;
      std::vector<Record> records;
      for (std::uint64_t j = i; j < i + b; ++j) {
        keys.push_back(test_support::demo_key(j));
        records.push_back(test_support::demo_record(j, run));
      }
      s.append_tasks(run, keys);
      s.append(records);
      s.commit();
      i += b;
      std::printf("C %llu\n", static_cast<unsigned long long>(i));
      std::fflush(stdout);
      if (c % 60 == 59) s.compact();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "store_crash_writer: %s\n", e.what());
    return 1;
  }
}
