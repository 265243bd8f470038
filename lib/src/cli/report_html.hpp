// What `mpibatch report` shows of a run, aggregated to a bounded size
// whatever its number of tasks, and its rendering as one self-contained
// HTML file (inline SVG and CSS: nothing loaded, no script).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpibatch/store.hpp"

namespace mpibatch::detail {

// A row of the slowest or failed tables: one task, its params as text.
struct ReportTask {
  double start_time = 0;  // seconds since the Unix epoch
  double duration = 0;
  int rank = 0;
  bool failed = false;
  std::string params;  // "name=value ..." of the params that vary in the run, cut
  // Until finish(): the task's job and params, to format once the constant ones are known.
  JobId job;
  std::vector<Value> values;
  std::string error;  // cut
};

// One rank's lane of the timeline.
struct ReportLane {
  int rank = 0;
  std::string host;
  std::vector<float> busy_ok, busy_failed;  // seconds of work in each time bin
  std::uint64_t tasks = 0;
  double busy = 0;  // seconds
};

struct ReportData {
  std::string store;
  nlohmann::json status;          // status_json's object: the summary's figures and names
  std::vector<std::string> jobs;  // "name vN" of the run's records
  // The timeline: [t0, t0 + bins * bin_seconds), the run's start to its end (or now).
  double t0 = 0, bin_seconds = 1;
  int bins = 1;
  std::vector<ReportLane> lanes;        // worker ranks, then any other rank that computed
  std::vector<std::uint64_t> ended_ok;  // tasks that ended in each bin, ok
  std::vector<std::uint64_t> ended_failed;
  // Durations: bin i holds [10^(hist_lo + i/hist_per_decade), ...).
  double hist_lo = -7;
  int hist_per_decade = 5;
  std::vector<std::uint64_t> hist_ok, hist_failed;
  std::vector<ReportTask> slowest;  // slowest first
  std::vector<ReportTask> failed;   // the first failed, in start order
  // Failure messages (first line, cut) and how many tasks failed with each;
  // "other" once too many differ.
  std::map<std::string, std::uint64_t> messages;
  // "name=value ..." of the params every task of a job had the same, by "job vN"
  // (left out of the tables' rows).
  std::map<std::string, std::string> constant_params;
  std::uint64_t records = 0;  // records of this run read (ok and failed)
  std::uint64_t records_failed = 0;
  int workers = 1;
  double busy_seconds = 0;
  double efficiency = 0;  // busy_seconds / (workers * elapsed)
  double mean_duration = 0;
  double max_duration = 0;
};

// The whole report as HTML.
std::string render_report_html(const ReportData& d);

// Escapes &, <, >, " and ' for HTML text and attribute values.
std::string html_escape(const std::string& text);

}  // namespace mpibatch::detail
