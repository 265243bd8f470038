// `mpibatch export` (one row per task of a run) and `mpibatch failed`.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "cli/run_spec.hpp"
#include "cli/values.hpp"
#include "cli/verbs.hpp"
#include "engine/crash_records.hpp"
#include "mpibatch/csv.hpp"

namespace mpibatch::detail {

namespace {

class TableOut {
 public:
  TableOut(const std::string& file, const std::string& format) : csv_(format == "csv") {
    out_ = file.empty() || file == "-" ? stdout : std::fopen(file.c_str(), "w");
    if (out_ == nullptr) throw IoError("cannot write " + file + ": " + std::strerror(errno));
    owned_ = out_ != stdout;
  }
  ~TableOut() {
    if (owned_) std::fclose(out_);
  }
  void row(const std::vector<std::pair<std::string, nlohmann::json>>& cells) {
    if (!csv_) {
      nlohmann::json j = nlohmann::json::object();
      for (const auto& [k, v] : cells) j[k] = v;
      std::fprintf(out_, "%s\n", j.dump().c_str());
      return;
    }
    std::vector<std::string> fields;
    if (!header_done_) {
      for (const auto& c : cells) fields.push_back(c.first);
      line_.clear();
      append_csv_record(line_, fields);
      std::fwrite(line_.data(), 1, line_.size(), out_);
      header_done_ = true;
      fields.clear();
    }
    for (const auto& [name, v] : cells) {
      fields.push_back(v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump());
    }
    line_.clear();
    append_csv_record(line_, fields);
    std::fwrite(line_.data(), 1, line_.size(), out_);
  }

 private:
  std::FILE* out_ = nullptr;
  bool owned_ = false;
  bool csv_;
  bool header_done_ = false;
  std::string line_;
};

nlohmann::json to_json(const Value& v) {
  return std::visit(
      [](const auto& x) {
        if constexpr (std::is_same_v<std::decay_t<decltype(x)>, double>)
          return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json();  // NaN: no value
        else
          return nlohmann::json(x);
      },
      v);
}

// A failed task that crashed its worker: quarantined (crash_records.hpp), or
// failed alone in its compute process under --isolate.
bool crashed(const CrashCounts& crashes, const Record& r) {
  const auto it = crashes.find(r.key);
  return (it != crashes.end() && it->second.count >= kQuarantineCrashes) ||
         r.error.starts_with(kCrashedPrefix);
}

}  // namespace

int do_export(const std::string& path, std::int64_t run_id, const std::string& format,
              const std::string& file) {
  // Every table's digest is read first: it also covers what no chunk
  // checksum does (strings in HDF5's heap), for a small part of the cost.
  Store s = Store::open(path, {.read_only = true, .check_digests = true});
  require_sound(s);
  std::vector<RunInfo> runs;
  const RunInfo& run = pick_run(s, run_id, runs);
  TableOut out(file, format);
  // Columns: the job's params and results (from the first record), then status and error.
  const JobInfo* job = nullptr;
  std::vector<std::pair<std::string, nlohmann::json>> cells;
  // A job this program registers, else the store's definition (a python
  // job's is named for its function, and made by its run).
  auto job_of = [&s](const std::string& name, std::int64_t version) -> const JobInfo& {
    for (const auto& j : registered_jobs())
      if (j.info.name == name) return j.info;
    if (const JobInfo* stored = s.find_job(name, version)) return *stored;
    return find_command_job(name).info;  // throws, naming the jobs there are
  };
  const CrashCounts crashes = read_crash_records(path);
  for_each_run_task(s, run, job_of, [&](const TaskKey& key, const Record* r) {
    if (r != nullptr && job == nullptr) job = s.find_job(r->job, r->job_version);
    cells.clear();
    cells.emplace_back("key", key.hex());
    if (job != nullptr) {
      for (std::size_t i = 0; i < job->params.size(); ++i) {
        cells.emplace_back(job->params[i].name,
                           r && i < r->params.size() ? to_json(r->params[i]) : nlohmann::json());
      }
      for (std::size_t i = 0; i < job->results.size(); ++i) {
        cells.emplace_back(job->results[i].name,
                           r && i < r->values.size() ? to_json(r->values[i]) : nlohmann::json());
      }
    }
    cells.emplace_back("status", r == nullptr              ? "pending"
                                 : r->status == Status::ok ? "ok"
                                 : crashed(crashes, *r)    ? "crashed"
                                                           : "failed");
    cells.emplace_back("error", r ? r->error : "");
    out.row(cells);
  });
  return kExitOk;
}

int do_failed(const std::string& path, bool json, bool full) {
  // Every table's digest is read first: it also covers what no chunk
  // checksum does (strings in HDF5's heap), for a small part of the cost.
  Store s = Store::open(path, {.read_only = true, .check_digests = true});
  require_sound(s);
  const CrashCounts crashes = read_crash_records(path);
  std::uint64_t n = 0, n_crashed = 0;
  s.for_each([&](const Record& r) {
    if (r.status != Status::failed) return;
    ++n;
    const bool q = crashed(crashes, r);
    n_crashed += q;
    std::string params;
    nlohmann::json jparams = nlohmann::json::object();
    if (const JobInfo* job = s.find_job(r.job, r.job_version)) {
      for (std::size_t i = 0; i < r.params.size() && i < job->params.size(); ++i) {
        params += (params.empty() ? "" : " ") + job->params[i].name + "=" +
                  shell_word(format_value(r.params[i]));
        jparams[job->params[i].name] = to_json(r.params[i]);
      }
    }
    if (json) {
      const nlohmann::json j{{"key", r.key.hex()}, {"job", r.job}, {"version", r.job_version},
                             {"params", jparams},  {"crashed", q}, {"error", r.error}};
      std::printf("%s\n", j.dump().c_str());
      return;
    }
    // One line a task: line breaks shown as " | ", a long message cut unless --full.
    std::string error;
    for (char c : r.error) error += c == '\n' ? std::string(" | ") : std::string(1, c);
    constexpr std::size_t kShort = 160;
    if (!full && error.size() > kShort) error = error.substr(0, kShort) + "... (--full for all)";
    std::printf("%s %s v%lld %s: %s\n", r.key.hex().c_str(), r.job.c_str(),
                static_cast<long long>(r.job_version), params.c_str(), error.c_str());
  });
  if (!json) {
    std::fprintf(
        stderr, "%s%s\n", plural(n, "failed task").c_str(),
        n_crashed > 0 ? (" (" + std::to_string(n_crashed) + " crashed their worker)").c_str() : "");
  }
  return n > 0 ? kExitFailedTasks : kExitOk;
}

}  // namespace mpibatch::detail
