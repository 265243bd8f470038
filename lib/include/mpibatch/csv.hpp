// CSV in and out, for task files and jobs that read or write CSV: RFC 4180
// (quoted fields may hold commas, quotes and newlines), parsed by libcsv.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mpibatch/export.hpp"

namespace mpibatch {

// Reads records one at a time. Not thread-safe.
class MPIBATCH_EXPORT CsvReader {
 public:
  // Throws UsageError naming the file when it cannot be opened.
  explicit CsvReader(const std::string& path);
  ~CsvReader();
  CsvReader(const CsvReader&) = delete;
  CsvReader& operator=(const CsvReader&) = delete;
  // The next record's fields (blank lines are skipped); false at the end.
  // Throws UsageError "<file> line N: <what>" for malformed CSV.
  bool next(std::vector<std::string>& fields);
  // The line the last record returned starts on (1-based).
  std::uint64_t line() const { return record_line_; }
  const std::string& path() const { return path_; }

 private:
  struct Parser;
  std::string path_;
  std::ifstream in_;
  std::unique_ptr<Parser> parser_;
  std::uint64_t record_line_ = 0;
};

// Appends one field, quoted only when it must be (comma, quote, CR, LF, or
// leading/trailing space), so equal fields always give equal bytes.
MPIBATCH_EXPORT void append_csv_field(std::string& out, std::string_view field);
// Appends fields joined by commas, and a newline.
MPIBATCH_EXPORT void append_csv_record(std::string& out, const std::vector<std::string>& fields);

}  // namespace mpibatch
