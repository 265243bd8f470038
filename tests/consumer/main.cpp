// Built against the installed package: store, key and serialization work.
#include <cstdio>
#include <mpibatch/store.hpp>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  using namespace mpibatch;
  const JobInfo job{
      "square", 1, "x*x", {{"x", FieldType::int64, "", ""}}, {{"y", FieldType::int64, "", ""}}};
  {
    Store s = Store::open(argv[1]);
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
  Store s = Store::open(argv[1], {.read_only = true});
  const auto r = s.get(task_key("square", 1, to_bytes(std::int64_t{9})));
  if (!r || from_bytes<std::int64_t>(r->result) != 81) {
    std::fprintf(stderr, "consumer: record not read back\n");
    return 1;
  }
  std::printf("consumer: ok\n");
  return 0;
}
