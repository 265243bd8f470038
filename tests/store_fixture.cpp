// Writes a store of N demo records in one finished run, as segments of 1,000
// records (no compaction: h5py reads them through the view), for the h5py
// test: store_fixture PATH N
#include <cstdio>
#include <cstdlib>

#include "test_support.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: store_fixture PATH N\n");
    return 2;
  }
  using namespace mpibatch;
  const std::uint64_t n = std::strtoull(argv[2], nullptr, 10);
  try {
    Store s = Store::open(argv[1], {.segment_records = 1000});
    s.define_job(test_support::demo_job());
    const auto run = s.begin_run(RunInfo{.start_time = 1.7e9,
                                         .command_line = "store_fixture " + std::string(argv[2]),
                                         .ranks = 2,
                                         .hosts = {"node-a", "node-b"},
                                         .slurm_job_id = "4242",
                                         .slurm_nodelist = "node-[a-b]"});
    for (std::uint64_t i = 0; i < n; i += 100) {
      std::vector<TaskKey> keys;
      std::vector<Record> records;
      for (std::uint64_t j = i; j < std::min(n, i + 100); ++j) {
        keys.push_back(test_support::demo_key(j));
        records.push_back(test_support::demo_record(j, run));
      }
      s.append_tasks(run, keys);
      s.append(records);
      s.commit();
    }
    s.end_run(run, RunState::finished, 0);
    s.close();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "store_fixture: %s\n", e.what());
    return 1;
  }
  return 0;
}
