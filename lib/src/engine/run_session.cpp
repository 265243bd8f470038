#include "engine/run_session.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace mpibatch::detail {

void validate(const RunOptions& o) {
  auto bad = [](const std::string& what) { throw UsageError("run option " + what); };
  if (o.batch_seconds <= 0) bad("batch_seconds must be > 0");
  if (o.retries < 0) bad("retries must be >= 0");
  if (!(o.max_failure_rate >= 0 && o.max_failure_rate <= 1))
    bad("max_failure_rate must be from 0 to 1");
  if (o.checkpoint_seconds <= 0) bad("checkpoint_seconds must be > 0");
  if (o.time_limit < 0) bad("time_limit must be >= 0");
  if (o.grace < 0) bad("grace must be >= 0");
  if (o.time_limit > 0 && o.grace >= o.time_limit) bad("grace must be shorter than time_limit");
}

RunSession::RunSession(const Environment& env, const JobInfo& job, const RunOptions& opt,
                       const std::vector<std::string>& hosts)
    : store_(std::make_unique<Store>(Store::open(opt.store, {.compress = opt.compress}))),
      compact_(opt.compact) {
  store_->define_job(job);
  crashes_ = take_crash_records(opt.store);
  RunInfo info;
  info.start_time =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  info.command_line = opt.command_line;
  info.task_spec = opt.task_spec;
  info.ranks = env.size();
  info.hosts = hosts;
  if (const char* id = std::getenv("SLURM_JOB_ID")) info.slurm_job_id = id;
  if (const char* nodes = std::getenv("SLURM_JOB_NODELIST")) info.slurm_nodelist = nodes;
  if (const char* n = std::getenv("SLURM_RESTART_COUNT")) info.slurm_restart_count = std::atoi(n);
  run_id_ = store_->begin_run(info);
  store_->commit();
}

RunSession::~RunSession() {
  if (!ended_) abandon();
}

void RunSession::end(const RunSummary& summary) {
  store_->end_run(run_id_, summary.state, summary.exit_status);
  if (summary.state == RunState::finished && compact_) {
    try {
      store_->close_merging();
    } catch (const Error& e) {
      std::fprintf(stderr, "mpibatch: merging the store's tables failed: %s\n", e.what());
    }
  }
  store_->close();
  ended_ = true;
}

void RunSession::abandon() noexcept {
  ended_ = true;
  try {
    store_->end_run(run_id_, RunState::failed, kExitRuntime);
    store_->close();
  } catch (...) {  // the error that brought us here is the one to report
  }
}

}  // namespace mpibatch::detail
