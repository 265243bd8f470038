// libFuzzer target: the --tasks file parsers (TaskRows: CSV with a header,
// JSON lines, plain text) with --param and --grid options beside them.
// Byte 0 picks the file's format (bits 0-1), the params given by --param
// (bits 2-5, one each; a plain text file leaves exactly one to the file)
// and whether the first line of the rest is a --grid option (bit 6); what
// follows is the file. Every row read must hold one value of each param's
// type, and must survive the task-input codec (row_codec) unchanged.
#include <cstdio>
#include <cstdlib>

#include "cli/row_codec.hpp"
#include "cli/task_rows.hpp"
#include "core/value_types.hpp"
#include "fuzz_support.hpp"

namespace {

using namespace mpibatch;
using namespace mpibatch::detail;

using fuzz::fail;

constexpr const char* kFixed[] = {"n=1", "x=0.5", "b=true", "s=hi"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const JobInfo job = fuzz::fuzz_job();
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const unsigned format = data[0] & 3;
  TaskSpec spec;
  if (data[0] & 0x40) {
    const auto eol = rest.find('\n');
    spec.grid.emplace_back(rest.substr(0, eol));
    rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 1);
  }
  for (unsigned p = 0; p < 4; ++p) {
    const bool given = format == 2 ? p != ((data[0] >> 2) & 3) : (data[0] >> (2 + p)) & 1;
    if (given) spec.params.emplace_back(kFixed[p]);
  }
  static const char* const kNames[] = {"t.csv", "t.jsonl", "t.txt", "t.json"};
  const auto file = fuzz::work_dir() / kNames[format];
  fuzz::write_file(file, rest);
  spec.tasks_file = file.string();
  try {
    TaskRows rows(job, spec);
    std::vector<Value> row, back;
    Bytes bytes, again;
    for (int i = 0; i < 10000 && rows.next(row); ++i) {
      if (!misfit(job.params, row, "param").empty()) fail("a task row does not fit the job");
      encode_row(row, bytes);
      decode_row(bytes, back);
      encode_row(back, again);  // bytes, not values: NaN != NaN
      if (again != bytes) fail("a task row changed through the task-input codec");
    }
  } catch (const Error&) {
  }
  return 0;
}
