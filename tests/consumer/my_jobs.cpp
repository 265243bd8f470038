// The README's "your own job" example: a program with its own job and the
// mpibatch command line, built against the installed package.
#include <mpibatch/command_line.hpp>

int main(int argc, char** argv) {
  using namespace mpibatch;
  register_job({{"square",
                 1,
                 "x squared",
                 {{"x", FieldType::int64, "", "the input"}},
                 {{"y", FieldType::int64, "", "x * x"}}},
                [](const Params& p) {
                  const std::int64_t x = p.integer("x");
                  return std::vector<Value>{x * x};
                }});
  return run_command_line(argc, argv);
}
