#include "mpibatch/csv.hpp"

#include <csv.h>

#include <deque>

#include "mpibatch/error.hpp"

namespace mpibatch {

struct CsvReader::Parser {
  csv_parser p{};
  std::vector<std::string> fields;
  std::deque<std::pair<std::uint64_t, std::vector<std::string>>> records;  // (first line, fields)
  std::uint64_t line = 0, start_line = 1;
  bool eof = false;

  static void on_field(void* s, std::size_t len, void* data) {
    static_cast<Parser*>(data)->fields.emplace_back(static_cast<const char*>(s), len);
  }
  // A record ends with the line just fed; the next one starts on the next line.
  static void on_row(int, void* data) {
    auto* self = static_cast<Parser*>(data);
    self->records.emplace_back(self->start_line, std::move(self->fields));
    self->fields.clear();
    self->start_line = self->line + 1;
  }
};

CsvReader::CsvReader(const std::string& path)
    : path_(path), in_(path), parser_(std::make_unique<Parser>()) {
  if (!in_) throw UsageError(path + ": cannot open the file");
  if (csv_init(&parser_->p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0)
    throw Error("csv_init failed");
  // Keep fields exactly as written: libcsv would trim spaces around unquoted fields.
  csv_set_space_func(&parser_->p, [](unsigned char) { return 0; });
}

CsvReader::~CsvReader() {
  csv_free(&parser_->p);
}

bool CsvReader::next(std::vector<std::string>& out) {
  Parser& ps = *parser_;
  std::string line;
  for (;;) {
    // Feed a line at a time so that errors can name their line.
    while (ps.records.empty() && !ps.eof) {
      if (std::getline(in_, line)) {
        ++ps.line;
        if (ps.line == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);  // a UTF-8 BOM
        line += '\n';
        if (csv_parse(&ps.p, line.data(), line.size(), Parser::on_field, Parser::on_row, &ps) !=
            line.size()) {
          throw UsageError(path_ + " line " + std::to_string(ps.line) + ": " +
                           csv_strerror(csv_error(&ps.p)));
        }
      } else {
        ps.eof = true;
        if (csv_fini(&ps.p, Parser::on_field, Parser::on_row, &ps) != 0) {
          throw UsageError(path_ + " line " + std::to_string(ps.start_line) + ": " +
                           csv_strerror(csv_error(&ps.p)) + " (an unterminated quoted field?)");
        }
      }
    }
    if (ps.records.empty()) return false;
    record_line_ = ps.records.front().first;
    out = std::move(ps.records.front().second);
    ps.records.pop_front();
    if (!(out.size() == 1 && out[0].empty())) return true;  // skip blank lines
  }
}

void append_csv_field(std::string& out, std::string_view field) {
  const bool quote = field.find_first_of(",\"\r\n") != std::string_view::npos ||
                     (!field.empty() && (field.front() == ' ' || field.back() == ' '));
  if (!quote) {
    out.append(field);
    return;
  }
  out += '"';
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

void append_csv_record(std::string& out, const std::vector<std::string>& fields) {
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ',';
    append_csv_field(out, fields[i]);
  }
  out += '\n';
}

}  // namespace mpibatch
