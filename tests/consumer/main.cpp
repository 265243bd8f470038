// Built against the installed package: store, key, serialization, the
// version header and a command-line job run through the public run().
#include <cstdio>
#include <mpibatch/command_line.hpp>
#include <mpibatch/store.hpp>
#include <mpibatch/version.hpp>
#include <string>

namespace {

using namespace mpibatch;

int store_round_trip(const std::string& path) {
  const JobInfo job{
      "square", 1, "x*x", {{"x", FieldType::int64, "", ""}}, {{"y", FieldType::int64, "", ""}}};
  {
    Store s = Store::open(path);
    s.define_job(job);
    Record r;
    r.key = task_key("square", 1, to_bytes(std::int64_t{9}));
    r.job = "square";
    r.result = to_bytes(std::int64_t{81});
    r.values = {std::int64_t{81}};
    r.params = {std::int64_t{9}};
    s.append(std::span(&r, 1));
    s.compact();
  }
  Store s = Store::open(path, {.read_only = true});
  const auto r = s.get(task_key("square", 1, to_bytes(std::int64_t{9})));
  if (!r || from_bytes<std::int64_t>(r->result) != 81) {
    std::fprintf(stderr, "consumer: record not read back\n");
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  Environment env(argc, argv);
  const std::string path = argv[1];
  if (env.rank() == 0 && store_round_trip(path) != 0) env.abort(1);

  // A command-line job over rows of our own, as `mpibatch run` runs one.
  const CommandJob cube{
      {"cube", 1, "x^3", {{"x", FieldType::int64, "", ""}}, {{"y", FieldType::int64, "", ""}}},
      [](const Params& p) {
        const std::int64_t x = p.integer("x");
        return std::vector<Value>{x * x * x};
      }};
  std::int64_t next = 1;
  RowStream rows;
  if (env.rank() == 0) {
    rows = [&next](std::vector<Value>& row) {
      if (next > 5) return false;
      row.assign(1, Value(next++));
      return true;
    };
  }
  const RunSummary s =
      run(env, cube, rows, {.store = path + ".cube.h5", .progress = ProgressMode::none}, 5);
  if (env.rank() == 0) {
    if (s.computed != 5 || s.exit_status != kExitOk) {
      std::fprintf(stderr, "consumer: run computed %llu tasks\n",
                   static_cast<unsigned long long>(s.computed));
      return 1;
    }
    std::printf("consumer: ok (mpibatch %s)\n", MPIBATCH_VERSION);
  }
  return 0;
}
