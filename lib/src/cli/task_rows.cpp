#include "cli/task_rows.hpp"

#include <cmath>
#include <deque>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/grid_range.hpp"
#include "cli/values.hpp"
#include "core/value_types.hpp"
#include "mpibatch/csv.hpp"
#include "mpibatch/error.hpp"

namespace mpibatch::detail {

namespace {

std::string names_of(const std::vector<Field>& fields) {
  std::string out;
  for (const auto& f : fields) out += (out.empty() ? "" : ", ") + f.name;
  return out.empty() ? "none" : out;
}

int param_index(const JobInfo& job, const std::string& name, const std::string& where) {
  for (std::size_t i = 0; i < job.params.size(); ++i)
    if (job.params[i].name == name) return static_cast<int>(i);
  throw UsageError(where + ": job " + job.name + " has no parameter '" + name +
                   "' (it has: " + names_of(job.params) + ")");
}

std::pair<std::string, std::string> split_assignment(const std::string& text, const char* option) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw UsageError(std::string(option) + " '" + shown(text) + "': expected name=value");
  }
  return {text.substr(0, eq), text.substr(eq + 1)};
}

}  // namespace

// One grid dimension: a list, or an arithmetic range computed on demand.
struct TaskRows::Dim {
  std::vector<Value> list;
  std::optional<GridRange> range;
  std::uint64_t size() const { return range ? range->size() : list.size(); }
  Value at(std::uint64_t i) const { return range ? range->at(i) : list[i]; }
};

// ---------------------------------------------------------------- files

class TaskRows::FileRows {
 public:
  virtual ~FileRows() = default;
  virtual bool next(std::vector<Value>& row) = 0;  // values of the file's params, in order
  std::vector<int> params;                         // job param index of each value
};

namespace {

class CsvRows : public TaskRows::FileRows {
 public:
  CsvRows(const JobInfo& job, const std::string& path) : job_(job), reader_(path) {
    std::vector<std::string> header;
    if (!reader_.next(header)) throw UsageError(path + ": empty file; expected a header row");
    for (const auto& h : header) params.push_back(param_index(job, h, path + " header"));
  }

  bool next(std::vector<Value>& row) override {
    std::vector<std::string> cells;
    if (!reader_.next(cells)) return false;
    ++row_;
    const std::string where = reader_.path() + " row " + std::to_string(row_) + " (line " +
                              std::to_string(reader_.line()) + ")";
    if (cells.size() != params.size()) {
      throw UsageError(where + ": " + std::to_string(cells.size()) + " fields; the header has " +
                       std::to_string(params.size()));
    }
    row.clear();
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const Field& f = job_.params[static_cast<std::size_t>(params[c])];
      row.push_back(parse_value(f, cells[c], where + ", column '" + f.name + "'"));
    }
    return true;
  }

 private:
  const JobInfo& job_;
  CsvReader reader_;
  std::uint64_t row_ = 0;
};

// A file read a line at a time, blank lines skipped, lines counted for messages.
class LineRows : public TaskRows::FileRows {
 protected:
  LineRows(const JobInfo& job, const std::string& path) : job_(job), path_(path), in_(path) {
    if (!in_) throw UsageError("--tasks " + path + ": cannot open the file");
  }
  bool next_line(std::string& line) {
    while (std::getline(in_, line)) {
      ++line_;
      if (line_ == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);  // a UTF-8 BOM
      if (!line.empty() && line.back() == '\r') line.pop_back();             // CRLF
      if (line.find_first_not_of(" \t") != std::string::npos) return true;
    }
    return false;
  }
  std::string where() const { return path_ + " line " + std::to_string(line_); }
  const JobInfo& job_;

 private:
  std::string path_;
  std::ifstream in_;
  std::uint64_t line_ = 0;
};

class JsonRows : public LineRows {
 public:
  JsonRows(const JobInfo& job, const std::string& path, std::vector<int> wanted)
      : LineRows(job, path) {
    params = std::move(wanted);
  }
  bool next(std::vector<Value>& row) override {
    std::string line;
    while (next_line(line)) {
      const std::string where = this->where();
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range: 1e400
        throw UsageError(where + ": not JSON that mpibatch reads: " + e.what());
      }
      if (!j.is_object()) throw UsageError(where + ": expected a JSON object of parameters");
      for (const auto& [k, v] : j.items()) {
        const int p = param_index(job_, k, where);
        if (std::find(params.begin(), params.end(), p) == params.end()) {
          throw UsageError(where + ": parameter '" + k + "' is already given by --param or --grid");
        }
      }
      row.clear();
      for (int p : params) {
        const Field& f = job_.params[static_cast<std::size_t>(p)];
        const std::string at = where + ", field '" + f.name + "'";
        if (!j.contains(f.name)) throw UsageError(at + ": missing");
        const auto& v = j[f.name];
        auto wrong = [&]() {
          throw UsageError(at + ": expected " + type_name(f.type) + ", got " + v.type_name());
        };
        with_type(f.type, [&](auto type) {
          using T = typename decltype(type)::value;
          const bool fits = std::is_same_v<T, std::int64_t> ? v.is_number_integer()
                            : std::is_same_v<T, double>     ? v.is_number()
                            : std::is_same_v<T, bool>       ? v.is_boolean()
                                                            : v.is_primitive() && !v.is_null();
          if (!fits) wrong();
          if (std::is_same_v<T, std::int64_t> && v.is_number_unsigned() &&
              v.get<std::uint64_t>() > std::uint64_t{INT64_MAX})  // would wrap to a negative
            throw UsageError(at + ": " + v.dump() + " is out of range for int64");
          if constexpr (std::is_same_v<T, std::string>)  // a number or bool as its JSON text
            row.emplace_back(std::in_place_type<T>, v.is_string() ? v.get<T>() : v.dump());
          else
            row.emplace_back(std::in_place_type<T>, v.get<T>());
        });
      }
      return true;
    }
    return false;
  }
};

class TextRows : public LineRows {
 public:
  TextRows(const JobInfo& job, const std::string& path, int param) : LineRows(job, path) {
    params = {param};
  }
  // Lines whose first non-blank character is # are comments (as in
  // disBatch's task files); blank lines are skipped too.
  bool next(std::vector<Value>& row) override {
    std::string line;
    do {
      if (!next_line(line)) return false;
    } while (line[line.find_first_not_of(" \t")] == '#');
    row.assign(1, parse_value(job_.params[static_cast<std::size_t>(params[0])], line, where()));
    return true;
  }
};

}  // namespace

// ---------------------------------------------------------------- rows

TaskRows::TaskRows(const JobInfo& job, const TaskSpec& spec) : job_(job) {
  source_.assign(job.params.size(), -3);  // -3: not given yet
  fixed_.resize(job.params.size());
  auto take = [&](int p, int kind, const std::string& where) {
    if (source_[static_cast<std::size_t>(p)] != -3) {
      throw UsageError(where + ": parameter '" + job.params[static_cast<std::size_t>(p)].name +
                       "' is given twice");
    }
    source_[static_cast<std::size_t>(p)] = kind;
  };
  for (const auto& text : spec.params) {
    const auto [name, value] = split_assignment(text, "--param");
    const int p = param_index(job, name, "--param " + shown(text));
    take(p, -1, "--param " + shown(text));
    fixed_[static_cast<std::size_t>(p)] =
        parse_value(job.params[static_cast<std::size_t>(p)], value, "--param " + shown(text));
  }
  for (const auto& text : spec.grid) {
    const auto [name, value] = split_assignment(text, "--grid");
    const std::string where = "--grid " + shown(text);
    const int p = param_index(job, name, where);
    take(p, static_cast<int>(dims_.size()), where);
    const Field& f = job.params[static_cast<std::size_t>(p)];
    Dim d;
    const auto dots = value.find("..");
    // A string parameter (e.g. an exec --cmd placeholder) takes a numeric range as text.
    const bool text_range = f.type == FieldType::string && dots != std::string::npos &&
                            value.find_first_not_of("0123456789.:-+eE") == std::string::npos;
    if (dots != std::string::npos && (f.type != FieldType::string || text_range)) {
      if (f.type == FieldType::boolean) {
        throw UsageError(where + ": a range needs a number parameter; '" + f.name + "' is " +
                         type_name(f.type));
      }
      d.range.emplace(value, f.type, where);
    } else {
      std::size_t from = 0;
      while (true) {
        const auto comma = value.find(',', from);
        d.list.push_back(parse_value(
            f, value.substr(from, comma == std::string::npos ? std::string::npos : comma - from),
            where));
        if (comma == std::string::npos) break;
        from = comma + 1;
      }
    }
    dims_.push_back(std::move(d));
  }
  std::vector<int> rest;  // params still without a value: the file's
  for (std::size_t p = 0; p < job.params.size(); ++p)
    if (source_[p] == -3) rest.push_back(static_cast<int>(p));

  if (!spec.tasks_file.empty()) {
    const std::string& path = spec.tasks_file;
    if (path.ends_with(".csv")) {
      file_ = std::make_unique<CsvRows>(job, path);
      for (int p : file_->params) take(p, -2, path + " header");
    } else if (path.ends_with(".jsonl") || path.ends_with(".ndjson") || path.ends_with(".json")) {
      file_ = std::make_unique<JsonRows>(job, path, rest);
      for (int p : rest) take(p, -2, path);
    } else {
      if (rest.size() != 1) {
        throw UsageError("--tasks " + path +
                         ": a plain text file (one value per line) serves a job with one "
                         "parameter left to give; job " +
                         job.name + " has " + std::to_string(rest.size()) + " (" +
                         names_of(job.params) + "). Use a .csv or .jsonl file");
      }
      file_ = std::make_unique<TextRows>(job, path, rest[0]);
      take(rest[0], -2, path);
    }
  }
  for (std::size_t p = 0; p < job.params.size(); ++p) {
    if (source_[p] == -3) {
      throw UsageError("job " + job.name + ": parameter '" + job.params[p].name +
                       "' has no value: give it with --param, --grid or a column of --tasks");
    }
  }
  odometer_.assign(dims_.size(), 0);
  std::uint64_t count = 1;
  for (const auto& d : dims_) {
    if (d.size() == 0) done_ = true;
    if (d.size() != 0 && count > std::numeric_limits<std::uint64_t>::max() / d.size())
      throw UsageError("--grid: the grid has more than 2^64 points");
    count *= d.size();
  }
  if (!file_) count_ = count;
}

TaskRows::~TaskRows() = default;

// Steps the grid like an odometer, last dimension fastest; false after the last point.
bool TaskRows::advance_grid() {
  for (std::size_t i = dims_.size(); i-- > 0;) {
    if (++odometer_[i] < dims_[i].size()) return true;
    odometer_[i] = 0;
  }
  return false;
}

bool TaskRows::next(std::vector<Value>& row) {
  if (done_) return false;
  if (!started_ || !advance_grid()) {
    // A new file row (or, without a file, the single pass over the grid).
    if (file_) {
      if (!file_->next(file_row_)) {
        done_ = true;
        return false;
      }
    } else if (started_) {
      done_ = true;
      return false;
    }
    started_ = true;
  }
  row.assign(job_.params.size(), Value());
  for (std::size_t p = 0; p < job_.params.size(); ++p) {
    const int s = source_[p];
    if (s == -1)
      row[p] = fixed_[p];
    else if (s >= 0)
      row[p] = dims_[static_cast<std::size_t>(s)].at(odometer_[static_cast<std::size_t>(s)]);
  }
  if (file_) {
    for (std::size_t i = 0; i < file_->params.size(); ++i)
      row[static_cast<std::size_t>(file_->params[i])] = file_row_[i];
  }
  return true;
}

}  // namespace mpibatch::detail
