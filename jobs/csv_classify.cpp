// csv_classify: the Wallaroo seed's pipeline. Splits a CSV file (header
// kept) into tasks of rows_per_task rows, runs a deterministic CPU-heavy
// classifier on every row, and writes OUT.csv: the input's columns plus
// class and score, rows in input order, byte for byte what the serial
// function below writes.
#include <cstdio>
#include <filesystem>

#include "builtin_jobs.hpp"
#include "mpibatch/command_line.hpp"
#include "mpibatch/csv.hpp"
#include "mpibatch/error.hpp"
#include "same_file.hpp"

namespace mpibatch::jobs {

namespace {

constexpr int kRounds = 20000;  // about 20-40 us of work a row
const char* const kClasses[] = {"alpha", "beta", "gamma", "delta", "epsilon"};

// The "fancy ML black box": burns CPU, deterministically, on the row's bytes.
std::pair<std::string, std::string> classify(const std::vector<std::string>& fields) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a over the fields
  for (const auto& f : fields) {
    for (unsigned char c : f) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0x1F) * 1099511628211ull;
  }
  for (int i = 0; i < kRounds; ++i) {  // xorshift64*
    h ^= h >> 12;
    h ^= h << 25;
    h ^= h >> 27;
    h *= 2685821657736338717ull;
  }
  char score[32];
  std::snprintf(score, sizeof score, "%.6f", static_cast<double>(h >> 11) * 0x1.0p-53);
  return {kClasses[h % 5], score};
}

// Output rows for input rows: the fields, then class and score.
void classify_rows(const std::vector<std::vector<std::string>>& rows, std::string& out) {
  for (auto row : rows) {
    auto [cls, score] = classify(row);
    row.push_back(cls);
    row.push_back(score);
    append_csv_record(out, row);
  }
}

// Parses a chunk (CSV text made by append_csv_record) back into rows.
std::vector<std::vector<std::string>> parse_chunk(const std::string& text) {
  // Chunks are our own canonical CSV: a tiny state machine suffices and is exact.
  std::vector<std::vector<std::string>> rows(1);
  std::string field;
  bool quoted = false, in_quotes = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_quotes) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        in_quotes = false;
      } else {
        field += c;
      }
    } else if (c == '"' && field.empty() && !quoted) {
      in_quotes = quoted = true;
    } else if (c == ',') {
      rows.back().push_back(std::move(field));
      field.clear();
      quoted = false;
    } else if (c == '\n') {
      rows.back().push_back(std::move(field));
      field.clear();
      quoted = false;
      rows.emplace_back();
    } else {
      field += c;
    }
  }
  rows.pop_back();  // after the last newline
  return rows;
}

// The output's header line; columns gets the input's column count.
std::string output_header(CsvReader& reader, const std::string& input, std::size_t& columns) {
  std::vector<std::string> header;
  if (!reader.next(header)) throw UsageError(input + ": empty file; expected a header row");
  columns = header.size();
  header.push_back("class");
  header.push_back("score");
  std::string out;
  append_csv_record(out, header);
  return out;
}

void write_atomically(const std::string& path, const std::function<void(std::FILE*)>& write) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) throw IoError("cannot write " + tmp);
  write(f);
  if (std::fclose(f) != 0) throw IoError("cannot write " + tmp);
  std::filesystem::rename(tmp, path);
}

}  // namespace

void csv_classify_serial(const std::string& input, const std::string& output) {
  CsvReader reader(input);
  std::size_t width = 0;
  const std::string header = output_header(reader, input, width);
  write_atomically(output, [&](std::FILE* f) {
    std::fwrite(header.data(), 1, header.size(), f);
    std::vector<std::string> fields;
    std::string out;
    while (reader.next(fields)) {
      if (fields.size() != width) {
        throw UsageError(input + " line " + std::to_string(reader.line()) + ": " +
                         std::to_string(fields.size()) + " fields; the header has " +
                         std::to_string(width));
      }
      out.clear();
      classify_rows({fields}, out);
      std::fwrite(out.data(), 1, out.size(), f);
    }
  });
}

CommandJob csv_classify_job() {
  CommandJob job{
      {"csv_classify",
       1,
       "classifies every row of a CSV file (the Wallaroo seed's pipeline): --param input=IN.csv "
       "--param output=OUT.csv [--param rows_per_task=100]",
       {{"rows", FieldType::string, "", "a chunk of input rows, as CSV"}},
       {{"output", FieldType::string, "", "the chunk's rows with class and score, as CSV"},
        {"count", FieldType::int64, "", "rows in the chunk"}}},
      [](const Params& p) {
        const auto rows = parse_chunk(p.text("rows"));
        std::string out;
        classify_rows(rows, out);
        return std::vector<Value>{out, static_cast<std::int64_t>(rows.size())};
      }};
  job.options = {{"input", FieldType::string, "", "the CSV file to classify (with a header row)"},
                 {"output", FieldType::string, "", "where to write the classified CSV"},
                 {"rows_per_task", FieldType::int64, "", "rows per task"}};
  job.option_defaults = {"", "", "100"};
  job.tasks = [](const Params& o) -> RowStream {
    const std::string input = o.text("input");
    refuse_same_file("input", input, "output", o.text("output"));
    const std::int64_t per = o.integer("rows_per_task");
    if (per <= 0) throw UsageError("--param rows_per_task must be > 0");
    auto reader = std::make_shared<CsvReader>(input);
    std::vector<std::string> header;
    if (!reader->next(header)) throw UsageError(input + ": empty file; expected a header row");
    const std::size_t width = header.size();
    return [reader, per, width, input](std::vector<Value>& row) {
      std::string chunk;
      std::vector<std::string> fields;
      std::int64_t n = 0;
      while (n < per && reader->next(fields)) {
        if (fields.size() != width) {
          throw UsageError(input + " line " + std::to_string(reader->line()) + ": " +
                           std::to_string(fields.size()) + " fields; the header has " +
                           std::to_string(width));
        }
        append_csv_record(chunk, fields);
        ++n;
      }
      if (n == 0) return false;
      row.assign(1, Value(std::in_place_type<std::string>, std::move(chunk)));
      return true;
    };
  };
  job.finish = [](const Params& o, const Store& store, std::int64_t run) {
    const std::string input = o.text("input"), output = o.text("output");
    refuse_same_file("input", input, "output", output);  // made so during the run
    CsvReader reader(input);
    std::size_t columns = 0;
    const std::string header = output_header(reader, input, columns);
    write_atomically(output, [&](std::FILE* f) {
      std::fwrite(header.data(), 1, header.size(), f);
      store.for_each_task(run, [&](const TaskKey& key, const Record* r) {
        if (r == nullptr || r->status != Status::ok)
          throw Error("no result for chunk " + key.hex());
        const auto& text = std::get<std::string>(r->values.at(0));
        std::fwrite(text.data(), 1, text.size(), f);
      });
    });
  };
  return job;
}

}  // namespace mpibatch::jobs
