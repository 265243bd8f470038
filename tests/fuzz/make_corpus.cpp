// Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/) from
// what the library really writes: a store's log and MANIFEST, a table's
// bytes, serialized messages and task rows; and a few hand-made task files
// and grid ranges. Usage: make_fuzz_corpus OUT_DIR (run by hand; the seeds
// are checked in).
#include <cstring>
#include <iostream>
#include <random>

#include "cli/row_codec.hpp"
#include "engine/messages.hpp"
#include "fuzz_support.hpp"
#include "store/manifest.hpp"

namespace {

using namespace mpibatch;
using namespace mpibatch::detail;
namespace fs = std::filesystem;

fs::path out_dir;

void seed(const std::string& target, const std::string& name, std::string_view bytes) {
  fs::create_directories(out_dir / target);
  fuzz::write_file(out_dir / target / name, bytes);
}

std::string with_byte(std::uint8_t first, std::string_view rest) {
  return std::string(1, static_cast<char>(first)) + std::string(rest);
}

// A log's frames as fuzz_log's framed form: a format byte, then each
// payload but the commit frames as a u16 length and its bytes.
std::string framed(const std::string& log) {
  std::string out(1, '\x02');  // format 3
  for (std::size_t pos = 16; pos + 16 <= log.size();) {
    std::uint32_t length = 0;
    std::memcpy(&length, log.data() + pos + 4, 4);
    const std::string payload = log.substr(pos + 16, length);
    pos += 16 + length;
    if (payload == "\x05") continue;
    const auto n = static_cast<std::uint16_t>(payload.size());
    out.append(reinterpret_cast<const char*>(&n), 2);
    out += payload;
  }
  return out;
}

void store_seeds() {
  const fs::path store = fuzz::work_dir() / "seeds.h5";
  const fs::path copy = fuzz::work_dir() / "copy.log";
  fuzz::make_store(store, &copy);
  const fs::path side = Store::sidecar(store);
  const std::string log = fuzz::read_bytes(copy);
  seed("log", "real.log", log);
  seed("log", "torn.log", log.substr(0, log.size() - 7));
  seed("log", "framed", framed(log));
  std::string header = "MPIBLOG\n";
  const std::uint64_t format = 3;
  header.append(reinterpret_cast<const char*>(&format), 8);
  seed("log", "header_only.log", header);

  const std::string manifest = fuzz::read_bytes(side / "MANIFEST");
  seed("manifest", "real", manifest);
  seed("manifest", "unsummed", manifest.substr(0, manifest.rfind("checksum ")));
  seed("manifest", "format2", "mpibatch-manifest 2\nbase 0 base-000000000000-1.h5\nsegment 3\n");
  seed("manifest", "format1", "mpibatch-manifest 1\nbase 4\nsegment 5\nsegment 7\n");

  const auto m = read_manifest(side / "MANIFEST");
  const std::string table = fuzz::read_bytes(side / m->base_file);
  seed("segment_file", "truncated", with_byte(0, table.substr(0, 512)));
  seed("segment_file", "empty", std::string(1, '\0'));
  seed("segment_file", "flips", std::string("\x01\x10\x00\x01\x00\x08\x80\xff\x7f\x20", 10));
}

void table_seeds() {
  std::mt19937 random(18);
  for (int i = 0; i < 6; ++i) {
    std::string bytes(16 + 8 * i, '\0');
    for (auto& c : bytes) c = static_cast<char>(random());
    seed("table", "edits" + std::to_string(i), bytes);
  }
  seed("table", "none", "");
}

void message_seeds() {
  const JobInfo job = fuzz::fuzz_job();
  Batch batch;
  for (std::uint64_t i = 0; i < 3; ++i) {
    Bytes row;
    encode_row(fuzz::fuzz_record(i, 1).params, row);
    batch.inputs += row;
    batch.sizes.push_back(static_cast<std::uint32_t>(row.size()));
  }
  seed("messages", "batch", with_byte(1, to_bytes(batch)));

  ResultBatch rb;
  rb.seconds = 0.5;
  RecordBatch& b = rb.records;
  for (const auto& f : job.results) b.values.push_back(empty_column(f.type));
  for (const auto& f : job.params) b.params.push_back(empty_column(f.type));
  for (std::uint64_t i = 0; i < 3; ++i) {
    const Record r = fuzz::fuzz_record(i, 1);
    b.status.push_back(r.status);
    b.start_time.push_back(r.start_time);
    b.duration.push_back(r.duration);
    b.results += r.result;
    b.result_sizes.push_back(static_cast<std::uint32_t>(r.result.size()));
    b.errors += r.error;
    b.error_sizes.push_back(static_cast<std::uint32_t>(r.error.size()));
    const std::vector<Value> values =
        r.values.empty() ? std::vector<Value>{0.0, std::string(), std::int64_t{0}, false}
                         : r.values;
    for (auto* cols : {&b.values, &b.params}) {
      const auto& from = cols == &b.values ? values : r.params;
      for (std::size_t c = 0; c < from.size(); ++c) {
        std::visit(
            [&](auto& col) {
              using T = typename std::decay_t<decltype(col)>::value_type;
              if constexpr (std::is_same_v<T, std::uint8_t>)
                col.push_back(std::get<bool>(from[c]) ? 1 : 0);
              else
                col.push_back(std::get<T>(from[c]));
            },
            (*cols)[c]);
      }
    }
  }
  seed("messages", "results", with_byte(3 << 1, to_bytes(rb)));
  rb.interrupted.push_back(1);
  seed("messages", "interrupted", with_byte(3 << 1, to_bytes(rb)));
}

void text_seeds() {
  // task_rows: byte 0 = format | params given << 2 | grid line 0x40 (fuzz_task_rows.cpp).
  seed("task_rows", "csv", with_byte(0x30, "n,x\n1,0.5\n2,\"1e3\"\n-3,nan\n"));
  seed("task_rows", "csv_bom_crlf",
       with_byte(0x30, "\xEF\xBB\xBFx,n\r\n\"0.25\",7\r\n\"1,5\",8\r\n"));
  seed("task_rows", "jsonl",
       with_byte(1,
                 "{\"n\":1,\"x\":0.5,\"b\":true,\"s\":\"a\"}\n{\"n\":2,\"x\":1,\"b\":false,"
                 "\"s\":3}\n\n"));
  seed("task_rows", "text", with_byte(2 | (3 << 2), "# comment\nhello\n  \nworld\r\n"));
  seed("task_rows", "grid_range", with_byte(0x41, "n=0..3\n{\"x\":0.5,\"b\":true,\"s\":\"a\"}\n"));
  seed("task_rows", "grid_list",
       with_byte(0x41, "x=0.1,0.2,1e-3\n{\"n\":1,\"b\":false,\"s\":\"q\"}\n"));
  // grid_range: byte 0 = the param's type (0 int64, 1 float64, 2 string).
  seed("grid_range", "int", with_byte(0, "0..10"));
  seed("grid_range", "int_step", with_byte(0, "-9223372036854775808..9223372036854775807:3"));
  seed("grid_range", "decimal", with_byte(1, "0.1..0.2:0.002"));
  seed("grid_range", "exponent", with_byte(1, "1e3..2e3:7.5"));
  seed("grid_range", "binary", with_byte(1, "0..1e300:1e299"));
  seed("grid_range", "text", with_byte(2, " 1 .. 5 : 2 "));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_fuzz_corpus OUT_DIR\n";
    return 2;
  }
  out_dir = argv[1];
  store_seeds();
  table_seeds();
  message_seeds();
  text_seeds();
  return 0;
}
