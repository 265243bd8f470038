// `mpibatch status`: a run's totals, rate and ranks, from its metadata alone.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>

#include "cli/values.hpp"
#include "cli/verbs.hpp"
#include "store/lock_file.hpp"

namespace mpibatch::detail {

namespace {

// Seconds since the store last changed on disk (the newest file's mtime).
double seconds_since_change(const std::filesystem::path& store) {
  double newest = 0;
  auto consider = [&](const std::filesystem::path& p) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) {
      newest = std::max(newest, static_cast<double>(st.st_mtim.tv_sec) +
                                    static_cast<double>(st.st_mtim.tv_nsec) * 1e-9);
    }
  };
  consider(store);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(Store::sidecar(store), ec))
    consider(e.path());
  return newest > 0 ? now_unix() - newest : -1;
}

}  // namespace

RunStatus run_status(const std::string& path, const RunInfo& run) {
  RunStatus st;
  if (run.counts) {
    const RunCounts& c = *run.counts;
    auto u = [](std::int64_t v) {
      return static_cast<std::uint64_t>(std::max<std::int64_t>(v, 0));
    };
    st.total = u(c.total);
    st.cached = u(c.cached);
    st.computed = u(c.computed);
    st.failed = u(c.failed);
    st.pending = st.total - std::min(st.total, st.cached + st.computed + st.failed);
    for (std::size_t r = 0; r < c.per_rank.size(); ++r)
      if (c.per_rank[r] > 0) st.per_rank[static_cast<int>(r)] = u(c.per_rank[r]);
  } else {  // a run recorded before runs kept counts: read its tasks' records
    const Store full = Store::open(path, {.read_only = true});
    full.for_each_task(run.id, [&](const TaskKey&, const Record* r) {
      ++st.total;
      if (r == nullptr) {
        ++st.pending;
      } else if (r->status == Status::failed) {
        ++st.failed;
      } else if (r->run == run.id) {
        ++st.computed;
        ++st.per_rank[r->rank];
      } else {
        ++st.cached;
      }
    });
  }
  // A run killed outright still says running until the next writer opens the store.
  st.writer_gone = run.state == RunState::running && !LockFile::held(Store::sidecar(path) / "LOCK");
  const double end = run.state == RunState::running ? now_unix() : run.end_time;
  st.elapsed = std::max(0.0, end - run.start_time);
  st.rate = st.elapsed > 0 ? static_cast<double>(st.computed) / st.elapsed : 0;
  st.eta = st.rate > 0 && run.state == RunState::running && !st.writer_gone
               ? static_cast<double>(st.pending) / st.rate
               : -1;
  st.seconds_since_change = seconds_since_change(path);
  return st;
}

nlohmann::json status_json(const std::string& path, const RunInfo& run,
                           const std::vector<RunInfo>& runs, const RunStatus& st) {
  nlohmann::json j{{"store", path},
                   {"run", run.id},
                   {"state", to_string(run.state)},
                   {"writer_alive", run.state == RunState::running && !st.writer_gone},
                   {"exit_status", run.exit_status},
                   {"start_time", run.start_time},
                   {"end_time", run.end_time},
                   {"elapsed", st.elapsed},
                   {"command_line", run.command_line},
                   {"ranks", run.ranks},
                   {"hosts", run.hosts},
                   {"slurm_job_id", run.slurm_job_id},
                   {"slurm_nodelist", run.slurm_nodelist},
                   {"slurm_restart_count", run.slurm_restart_count},
                   {"total", st.total},
                   {"done", st.cached + st.computed + st.failed},
                   {"cached", st.cached},
                   {"computed", st.computed},
                   {"failed", st.failed},
                   {"pending", st.pending},
                   {"rate", st.rate},
                   {"mean_rate", st.rate},  // progress JSON's name for this figure
                   {"eta", st.eta < 0 ? nlohmann::json() : nlohmann::json(st.eta)},
                   {"seconds_since_last_commit", st.seconds_since_change},
                   {"runs", runs.size()}};
  nlohmann::json ranks = nlohmann::json::object();
  for (const auto& [r, n] : st.per_rank) ranks[std::to_string(r)] = n;
  j["per_rank"] = ranks;
  nlohmann::json chain = nlohmann::json::array();
  for (const auto& r : runs) {
    if (!r.slurm_job_id.empty()) {
      chain.push_back({{"run", r.id},
                       {"slurm_job_id", r.slurm_job_id},
                       {"nodes", r.slurm_nodelist},
                       {"restart_count", r.slurm_restart_count},
                       {"state", to_string(r.state)}});
    }
  }
  j["slurm_jobs"] = chain;
  return j;
}

int do_status(const std::string& path, std::int64_t run_id, bool json) {
  // The run's counts are in its metadata: no key index, whatever the store's size.
  Store s = Store::open(path, {.read_only = true, .metadata_only = true});
  std::vector<RunInfo> runs;
  const RunInfo& run = pick_run(s, run_id, runs);
  const RunStatus st = run_status(path, run);
  if (json) {
    std::printf("%s\n", status_json(path, run, runs, st).dump().c_str());
    return kExitOk;
  }
  const auto& [total, cached, computed, failed, pending, per_rank, writer_gone, elapsed, rate, eta,
               since] = st;
  const double done = static_cast<double>(cached + computed + failed);
  std::printf("store    %s (%s%s)\n", path.c_str(), plural(runs.size(), "run").c_str(),
              s.problems().empty() ? "" : ", DAMAGED: run 'mpibatch verify'");
  std::printf("run      %lld: %s, started %s, %.1f s%s\n", static_cast<long long>(run.id),
              writer_gone ? "running or killed (no writer holds the lock)" : to_string(run.state),
              time_text(run.start_time).c_str(), elapsed,
              run.state == RunState::running
                  ? ""
                  : (", exit status " + std::to_string(run.exit_status)).c_str());
  std::printf("command  %s\n", run.command_line.c_str());
  std::string hosts;
  for (const auto& h : run.hosts) hosts += (hosts.empty() ? "" : ",") + h;
  std::printf(
      "ranks    %d on %s%s\n", run.ranks, hosts.c_str(),
      run.slurm_job_id.empty()
          ? ""
          : (", Slurm job " + run.slurm_job_id + " on " + run.slurm_nodelist +
             (run.slurm_restart_count ? ", restart " + std::to_string(run.slurm_restart_count)
                                      : ""))
                .c_str());
  std::printf(
      "tasks    %llu: %llu done (%.1f%%), %llu computed this run, %llu from the store, %llu "
      "failed, %llu pending\n",
      static_cast<unsigned long long>(total),
      static_cast<unsigned long long>(cached + computed + failed),
      total ? 100.0 * done / static_cast<double>(total) : 0.0,
      static_cast<unsigned long long>(computed), static_cast<unsigned long long>(cached),
      static_cast<unsigned long long>(failed), static_cast<unsigned long long>(pending));
  std::printf(
      "rate     %.1f tasks/s%s; last change %.0f s ago\n", rate,
      eta >= 0 ? (", ETA " + std::to_string(static_cast<long long>(eta)) + " s").c_str() : "",
      since);
  std::string pr;
  for (const auto& [r, n] : per_rank)
    pr += (pr.empty() ? "" : ", ") + std::to_string(r) + ": " + std::to_string(n);
  std::printf("per rank %s\n", pr.empty() ? "-" : pr.c_str());
  std::string chain;
  for (const auto& r : runs) {
    if (r.slurm_job_id.empty()) continue;
    chain += (chain.empty() ? "" : ", ") + r.slurm_job_id + " (run " + std::to_string(r.id) + ", " +
             to_string(r.state) + ")";
  }
  if (!chain.empty()) std::printf("slurm    %s\n", chain.c_str());
  return kExitOk;
}

}  // namespace mpibatch::detail
