// libFuzzer target: the messages between ranks (engine/messages.hpp): a
// worker's results as rank 0 decodes them, and a batch as a worker does.
// The first byte picks the message (bit 0) and the number of tasks the
// results answer (the rest); the other bytes are the message. Results that
// pass misfit() are used as the master uses them: keyed, encoded as the
// store's records frame and decoded back, row for row. A batch that passes
// is cut into task inputs, each decoded as a command job's row (row_codec)
// and encoded again, which must give its bytes back.
#include <cstdio>
#include <cstdlib>

#include "cli/row_codec.hpp"
#include "engine/messages.hpp"
#include "fuzz_support.hpp"
#include "store/frame_codec.hpp"

namespace {

using namespace mpibatch;
using namespace mpibatch::detail;

using fuzz::fail;

void results(std::string_view bytes, std::size_t tasks) {
  ResultBatch rb;
  try {
    rb = from_bytes<ResultBatch>(bytes);
  } catch (const Error&) {
    return;
  }
  const JobInfo job = fuzz::fuzz_job();
  if (!misfit(rb, tasks, job).empty()) return;
  RecordBatch& b = rb.records;
  b.job = job.name;
  b.run = 1;
  b.rank.assign(tasks, 1);
  for (std::size_t i = 0; i < tasks; ++i) b.keys.push_back(fuzz::fuzz_key(i));
  std::string frame;
  encode_records(frame, b, 0);
  Decoder d(std::string_view(frame).substr(1));
  std::size_t rows = 0;
  decode_records(d, kLogFormat, [&](std::uint32_t, Record&& r) {
    if (r.key != b.keys[rows] || r.status != b.status[rows] || r.params.size() != job.params.size())
      fail("a records frame decodes to other rows than it was encoded from");
    ++rows;
  });
  if (rows != tasks || !d.done()) fail("a records frame holds other rows than it was given");
}

void batch(std::string_view bytes) {
  Batch b;
  try {
    b = from_bytes<Batch>(bytes);
  } catch (const Error&) {
    return;
  }
  if (!misfit(b).empty()) return;
  std::size_t at = 0;
  std::vector<Value> row;
  Bytes again;
  for (const auto n : b.sizes) {
    const std::string_view input = std::string_view(b.inputs).substr(at, n);
    at += n;
    try {
      decode_row(input, row);
    } catch (const Error&) {
      continue;
    }
    encode_row(row, again);
    if (again != input) fail("a task row decoded and encoded again differs");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1)
    batch(bytes);
  else
    results(bytes, data[0] >> 1);
  return 0;
}
