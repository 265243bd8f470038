// The tasks of `mpibatch run`, streamed: rows of a --tasks file (CSV with a
// header, JSON lines, or plain text with one value per line), times the
// Cartesian product of the --grid dimensions (generated lazily, last one
// fastest), with the --param values fixed. Each row holds one typed value per
// job parameter, in the job's order.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mpibatch/store.hpp"

namespace mpibatch::detail {

struct TaskSpec {
  std::string tasks_file;
  std::vector<std::string> grid;    // "name=v1,v2" or "name=a..b[:step]"
  std::vector<std::string> params;  // "name=value"
};

class TaskRows {
 public:
  // Parses the spec against the job and opens the file. Throws UsageError
  // naming the option, file, row or column at fault.
  TaskRows(const JobInfo& job, const TaskSpec& spec);
  ~TaskRows();
  TaskRows(const TaskRows&) = delete;
  TaskRows& operator=(const TaskRows&) = delete;
  // The next row, or false at the end. Throws UsageError for a bad file row.
  bool next(std::vector<Value>& row);
  // Without a --tasks file, the number of rows, counted without reading
  // them (every grid value was checked when parsed); nullopt with a file.
  std::optional<std::uint64_t> count() const { return count_; }

  class FileRows;  // one per file format

 private:
  struct Dim;
  bool advance_grid();
  const JobInfo& job_;
  std::vector<int> source_;  // per param: -1 fixed, -2 file, else grid dimension
  std::vector<Value> fixed_;
  std::vector<Dim> dims_;
  std::vector<std::uint64_t> odometer_;
  std::unique_ptr<FileRows> file_;
  std::vector<Value> file_row_;
  bool started_ = false;
  bool done_ = false;
  std::optional<std::uint64_t> count_;
};

}  // namespace mpibatch::detail
