// `mpibatch report`: one self-contained HTML file showing what a run did.
// The records are read once, front to back, and only aggregates are kept
// (time bins per rank, log bins of durations, the top N slowest and the
// first N failed tasks), so memory and the file's size do not grow with the
// number of tasks.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <vector>

#include "cli/report_html.hpp"
#include "cli/values.hpp"
#include "cli/verbs.hpp"

namespace mpibatch::detail {

namespace {

constexpr std::size_t kMaxMessages = 200;  // distinct failure messages kept
constexpr std::size_t kCut = 400;          // bytes of params or a message shown

std::string cut(const std::string& s, std::size_t n) {
  if (s.size() <= n) return s;
  std::size_t end = n;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;  // whole UTF-8
  return s.substr(0, end) + "...";
}

// Same device and inode: the path itself, through links and spellings.
bool same_file(const std::filesystem::path& a, const std::filesystem::path& b) {
  struct stat sa {
  }, sb{};
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// Throws UsageError when writing output would overwrite the store or its sidecar.
void refuse_store_as_output(const std::string& store, const std::string& output) {
  namespace fs = std::filesystem;
  const fs::path out(output), sidecar = Store::sidecar(store);
  std::error_code ec;
  const fs::path parent = fs::weakly_canonical(out, ec).parent_path();
  const bool in_sidecar = !ec && same_file(parent, sidecar);
  if (same_file(out, store) || same_file(out, sidecar) || in_sidecar)
    throw UsageError("-o " + output + " is " + (in_sidecar ? "in the sidecar of " : "") +
                     "the store " + store +
                     ": writing there would destroy it; choose another output");
}

// Writes text to output through a temporary file renamed into place, so a
// reader never sees half a report and a failed write leaves the old one.
void write_whole(const std::string& output, const std::string& text) {
  if (output == "-") {
    if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout))
      throw IoError(std::string("cannot write the report to standard output: ") +
                    std::strerror(errno));
    return;
  }
  const std::string tmp = output + ".tmp" + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) throw IoError("cannot write " + output + ": " + std::strerror(errno));
  const bool wrote = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const int err = errno;
  if (std::fclose(f) != 0 || !wrote) {
    std::remove(tmp.c_str());
    throw IoError("cannot write " + output + ": " + std::strerror(wrote ? errno : err));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, output, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw IoError("cannot write " + output + ": " + ec.message());
  }
}

// Streams a run's records into ReportData's aggregates.
class Aggregator {
 public:
  Aggregator(ReportData& d, const Store& s, const RunInfo& run, std::size_t top)
      : d_(d), s_(s), run_(run), top_(top) {
    d_.workers = run.ranks > 1 ? run.ranks - 1 : 1;  // rank 0 dispatches when there are others
    for (int r = run.ranks > 1 ? 1 : 0; r < std::max(run.ranks, 1); ++r) lane(r);
    d_.hist_ok.assign(static_cast<std::size_t>(13 * d_.hist_per_decade), 0);
    d_.hist_failed = d_.hist_ok;
    d_.ended_ok.assign(static_cast<std::size_t>(d_.bins), 0);
    d_.ended_failed = d_.ended_ok;
  }

  void add(const Record& r) {
    if (r.run != run_.id) return;
    const bool failed = r.status == Status::failed;
    ++d_.records;
    d_.records_failed += failed ? 1 : 0;
    const double dur = std::isfinite(r.duration) ? std::max(0.0, r.duration) : 0.0;
    d_.busy_seconds += dur;
    d_.max_duration = std::max(d_.max_duration, dur);
    ReportLane& l = lane(r.rank);
    ++l.tasks;
    l.busy += dur;
    const double start = std::isfinite(r.start_time) ? r.start_time : d_.t0;
    add_busy(l, failed, start, dur);
    const double end = (start + dur - d_.t0) / d_.bin_seconds;
    const auto eb = static_cast<std::size_t>(std::clamp(end, 0.0, d_.bins - 1.0));
    (failed ? d_.ended_failed : d_.ended_ok)[eb] += 1;
    const double lg = dur > 0 ? std::log10(dur) : d_.hist_lo;
    const auto hb = static_cast<std::size_t>(
        std::clamp((lg - d_.hist_lo) * d_.hist_per_decade, 0.0, d_.hist_ok.size() - 1.0));
    (failed ? d_.hist_failed : d_.hist_ok)[hb] += 1;
    see_params(r);
    // The slowest: top_ rows at most, params formatted only for a task that enters.
    if (d_.slowest.size() < top_) {
      d_.slowest.push_back(task_row(r, dur, failed));
      if (d_.slowest.size() == top_) find_fastest();
    } else if (top_ > 0 && dur > d_.slowest[fastest_].duration) {
      d_.slowest[fastest_] = task_row(r, dur, failed);
      find_fastest();
    }
    if (failed) {
      if (d_.failed.size() < top_) d_.failed.push_back(task_row(r, dur, true));
      std::string first = r.error.substr(0, r.error.find('\n'));
      first = cut(first, 160);
      auto it = d_.messages.find(first);
      if (it != d_.messages.end())
        ++it->second;
      else if (d_.messages.size() < kMaxMessages)
        d_.messages.emplace(first, 1);
      else
        ++d_.messages["(other messages)"];
    }
  }

  void finish() {
    std::sort(d_.slowest.begin(), d_.slowest.end(),
              [](const ReportTask& a, const ReportTask& b) { return a.duration > b.duration; });
    std::sort(d_.failed.begin(), d_.failed.end(),
              [](const ReportTask& a, const ReportTask& b) { return a.start_time < b.start_time; });
    std::sort(d_.lanes.begin(), d_.lanes.end(),
              [](const ReportLane& a, const ReportLane& b) { return a.rank < b.rank; });
    for (auto* rows : {&d_.slowest, &d_.failed}) {
      for (auto& t : *rows) {
        t.params = params_text(t.job, t.values, true);
        t.values.clear();
      }
    }
    for (const auto& [id, seen] : params_) {
      if (seen.tasks < 2) continue;
      const std::string text = params_text(id, seen.first, false);
      if (!text.empty()) d_.constant_params[id.name + " v" + std::to_string(id.version)] = text;
    }
    d_.mean_duration = d_.records ? d_.busy_seconds / static_cast<double>(d_.records) : 0;
  }

 private:
  ReportLane& lane(int rank) {
    if (rank >= 0 && static_cast<std::size_t>(rank) < lane_of_.size() && lane_of_[rank] >= 0)
      return d_.lanes[static_cast<std::size_t>(lane_of_[rank])];
    if (rank < 0) {  // not a rank any run has: kept apart, never indexed
      for (auto& l : d_.lanes)
        if (l.rank == rank) return l;
    } else {
      if (static_cast<std::size_t>(rank) >= lane_of_.size())
        lane_of_.resize(static_cast<std::size_t>(rank) + 1, -1);
      lane_of_[static_cast<std::size_t>(rank)] = static_cast<int>(d_.lanes.size());
    }
    ReportLane l;
    l.rank = rank;
    if (rank >= 0 && static_cast<std::size_t>(rank) < run_.hosts.size())
      l.host = run_.hosts[static_cast<std::size_t>(rank)];
    l.busy_ok.assign(static_cast<std::size_t>(d_.bins), 0.0F);
    l.busy_failed = l.busy_ok;
    d_.lanes.push_back(std::move(l));
    return d_.lanes.back();
  }

  // Spreads [start, start + dur) over the bins it covers.
  void add_busy(ReportLane& l, bool failed, double start, double dur) {
    auto& busy = failed ? l.busy_failed : l.busy_ok;
    const double a = std::max(0.0, (start - d_.t0) / d_.bin_seconds);
    const double b = std::min(static_cast<double>(d_.bins), a + dur / d_.bin_seconds);
    if (!(b > a)) {
      if (dur > 0 && a < d_.bins) busy[static_cast<std::size_t>(a)] += static_cast<float>(dur);
      return;
    }
    for (auto i = static_cast<std::size_t>(a); i < static_cast<std::size_t>(d_.bins); ++i) {
      const double lo = std::max(a, static_cast<double>(i)),
                   hi = std::min(b, static_cast<double>(i + 1));
      if (hi <= lo) break;
      busy[i] += static_cast<float>((hi - lo) * d_.bin_seconds);
    }
  }

  ReportTask task_row(const Record& r, double dur, bool failed) {
    ReportTask t;
    t.start_time = r.start_time;
    t.duration = dur;
    t.rank = r.rank;
    t.failed = failed;
    t.error = cut(r.error, kCut);
    t.job = {r.job, r.job_version};
    t.values = r.params;
    return t;
  }

  // Notes which of a job's params differ between its tasks.
  void see_params(const Record& r) {
    if (last_ == nullptr || last_->first.name != r.job || last_->first.version != r.job_version) {
      const auto [it, fresh] = params_.try_emplace(JobId{r.job, r.job_version});
      if (fresh) d_.jobs.push_back(r.job + " v" + std::to_string(r.job_version));
      last_ = &*it;
    }
    Seen& seen = last_->second;
    if (seen.tasks++ == 0) {
      seen.first = r.params;
      seen.varies.assign(r.params.size(), 0);
      return;
    }
    const std::size_t n = std::min(r.params.size(), seen.first.size());
    for (std::size_t i = 0; i < n; ++i)
      if (!seen.varies[i] && r.params[i] != seen.first[i]) seen.varies[i] = 1;
    for (std::size_t i = n; i < seen.varies.size(); ++i) seen.varies[i] = 1;  // absent: differs
  }

  // "name=value ..." of the params whose varies[i] is want (all of them for a job of one task).
  std::string params_text(const JobId& id, const std::vector<Value>& values, bool want) const {
    const JobInfo* job = s_.find_job(id.name, id.version);
    const auto it = params_.find(id);
    std::string text;
    if (job == nullptr) return text;
    for (std::size_t i = 0; i < values.size() && i < job->params.size(); ++i) {
      const bool varies = it == params_.end() || it->second.tasks < 2 ||
                          i >= it->second.varies.size() || it->second.varies[i];
      if (varies != want) continue;
      text += (text.empty() ? "" : " ") + job->params[i].name + "=" +
              shell_word(format_value(values[i]));
      if (text.size() > kCut) break;
    }
    return cut(text, kCut);
  }

  void find_fastest() {
    fastest_ = 0;
    for (std::size_t i = 1; i < d_.slowest.size(); ++i)
      if (d_.slowest[i].duration < d_.slowest[fastest_].duration) fastest_ = i;
  }

  ReportData& d_;
  const Store& s_;
  const RunInfo& run_;
  std::size_t top_;
  std::vector<int> lane_of_;  // rank -> index in d_.lanes, -1 for none yet
  std::size_t fastest_ = 0;   // the row of d_.slowest a slower task replaces
  struct Seen {
    std::uint64_t tasks = 0;
    std::vector<Value> first;  // the first task's params
    std::vector<char> varies;  // param i differed from first's in some task
  };
  std::map<JobId, Seen> params_;
  std::pair<const JobId, Seen>* last_ = nullptr;  // the previous record's job
};

}  // namespace

int do_report(const std::string& path, std::int64_t run_id, const std::string& output, int top) {
  if (output != "-") refuse_store_as_output(path, output);
  Store s = Store::open(path, {.read_only = true});
  std::vector<RunInfo> runs;
  const RunInfo& run = pick_run(s, run_id, runs);
  require_sound(s);  // a report of part of the results would look like all of them
  const RunStatus st = run_status(path, run);
  ReportData d;
  d.store = path;
  d.status = status_json(path, run, runs, st);
  d.t0 = run.start_time;
  // Bins: at most 600 across, fewer with many ranks so that the file stays small.
  const int lanes = std::max(run.ranks, 1);
  d.bins = std::clamp(120000 / lanes, 50, 600);
  d.bin_seconds = std::max(st.elapsed, 1e-3) / d.bins;
  Aggregator agg(d, s, run, static_cast<std::size_t>(std::max(top, 0)));
  s.for_each([&](const Record& r) { agg.add(r); });
  agg.finish();
  d.efficiency = st.elapsed > 0 ? d.busy_seconds / (d.workers * st.elapsed) : 0;
  write_whole(output, render_report_html(d));
  if (output != "-")
    std::fprintf(stderr, "mpibatch: wrote %s (run %lld, %s)\n", output.c_str(),
                 static_cast<long long>(run.id), plural(d.records, "task record").c_str());
  return kExitOk;
}

}  // namespace mpibatch::detail
