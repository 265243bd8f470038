// run_erased(): every rank to its part of a run. Rank 0 opens the store and
// runs the master; the other ranks serve batches until told to stop.
#include <cstdio>
#include <memory>
#include <optional>

#include "core/reported.hpp"
#include "engine/channel.hpp"
#include "engine/crash_records.hpp"
#include "engine/isolated_compute.hpp"
#include "engine/master.hpp"
#include "engine/run_session.hpp"
#include "engine/stop_signals.hpp"
#include "mpi/messaging.hpp"
#include "mpi/mpi_check.hpp"

namespace mpibatch::detail {

namespace {

// Each rank's text (cut at 255 bytes), gathered on rank 0 (empty elsewhere).
std::vector<std::string> gather_text(const Environment& env, std::string mine) {
  constexpr int kLen = 256;
  mine.resize(kLen - 1, '\0');
  mine.resize(kLen, '\0');
  std::string all(env.rank() == 0 ? static_cast<std::size_t>(kLen * env.size()) : 0, '\0');
  MPI_Request request = MPI_REQUEST_NULL;
  mpi::check(
      MPI_Igather(mine.data(), kLen, MPI_CHAR, all.data(), kLen, MPI_CHAR, 0, env.comm(), &request),
      "MPI_Igather");
  mpi::wait(request);
  std::vector<std::string> texts;
  for (int r = 0; env.rank() == 0 && r < env.size(); ++r)
    texts.emplace_back(all.c_str() + r * kLen);
  return texts;
}

// Every computing rank records the task that crashes it in the store's
// folder, which rank 0 made: a rank that cannot reach it is named once.
void warn_unshared(const std::vector<std::string>& why, const std::vector<std::string>& hosts,
                   const std::filesystem::path& store) {
  int first = -1, count = 0;
  for (std::size_t r = 0; r < why.size(); ++r) {
    if (why[r].empty()) continue;
    if (first < 0) first = static_cast<int>(r);
    ++count;
  }
  if (first < 0) return;
  std::fprintf(stderr,
               "mpibatch: warning: rank %d on %s%s cannot reach %s (%s), so a task that crashes "
               "it is not recorded or quarantined; put the store where every node sees it\n",
               first, hosts[static_cast<std::size_t>(first)].c_str(),
               count > 1 ? (" and " + std::to_string(count - 1) + " more").c_str() : "",
               Store::sidecar(store).c_str(), why[static_cast<std::size_t>(first)].c_str());
}

// compute(), or with isolate_command a process of its own (kept in isolated).
ComputeFn compute_fn(const ErasedJob& job, const RunOptions& opt,
                     std::unique_ptr<IsolatedCompute>& isolated) {
  if (opt.isolate_command.empty()) {
    return [&job](const Batch& b) {
      crash_record_this_thread();  // one rank: the local channel's thread
      return compute(job, b);
    };
  }
  isolated = std::make_unique<IsolatedCompute>(job, opt.isolate_command, opt.isolate_hello,
                                               opt.isolate_task_timeout);
  return [p = isolated.get()](const Batch& b) { return p->compute(b); };
}

}  // namespace

RunSummary run_erased(const Environment& env, const ErasedJob& job, const TaskSource& tasks,
                      const RunOptions& options, std::optional<std::uint64_t> task_count) {
  validate(options);
  RunOptions opt = options;
  if (opt.store.empty()) opt.store = job.info.name + ".h5";
  const std::vector<std::string> hosts = gather_text(env, env.host());
  StopSignals signals;

  if (env.rank() != 0) {
    RunSummary s;
    // 1: serve; else minus the status the master could not start with (it
    // says why): every rank exits with it, so mpirun's status is that one.
    if (const int go = env.broadcast(0); go != 1) {
      s.exit_status = go < 0 ? -go : kExitRuntime;
      return s;
    }
    const int run = env.broadcast(0);
    CrashRecorder recorder(env.broadcast(std::string()), run, env.rank());
    gather_text(env, recorder.error());
    std::unique_ptr<IsolatedCompute> isolated;
    serve(env, compute_fn(job, opt, isolated));
    recorder.finished();
    s.exit_status = env.broadcast(s.exit_status);
    return s;
  }

  // Rank 0: open everything first, then tell the workers whether to serve.
  std::unique_ptr<RunSession> session;
  std::unique_ptr<IsolatedCompute> isolated;  // before the channel that uses it
  std::unique_ptr<Channel> channel;
  try {
    session = std::make_unique<RunSession>(env, job.info, opt, hosts);
    channel =
        env.size() > 1 ? make_mpi_channel(env) : make_local_channel(compute_fn(job, opt, isolated));
  } catch (...) {
    int status = kExitRuntime;
    std::string why;
    try {
      throw;
    } catch (const Error& e) {
      status = e.exit_status();
      why = e.what();
    } catch (const std::exception& e) {
      why = e.what();
    }
    if (env.size() == 1) throw;
    // Said before the workers hear of it: once one exits, mpirun may kill
    // this rank before it could say why.
    std::fprintf(stderr, "mpibatch: %s\n", why.c_str());
    std::fflush(stderr);
    error_reported() = true;
    try {
      env.broadcast(-status);
    } catch (...) {  // the first error is the one to report
    }
    throw;
  }
  env.broadcast(1);
  const int run = env.broadcast(static_cast<int>(session->run_id()));
  const std::string folder = env.broadcast(crash_folder(opt.store));
  std::optional<CrashRecorder> recorder;  // rank 0 computes when it is alone
  if (env.size() == 1) {
    recorder.emplace(folder, run, 0);
    warn_unshared({recorder->error()}, hosts, opt.store);
  } else {
    warn_unshared(gather_text(env, std::string()), hosts, opt.store);
  }

  RunSummary summary;
  try {
    bool clean = true;
    summary = run_master(job, tasks, task_count, opt, *channel, *session, signals, clean);
    if (recorder) recorder->finished();
    session->end(summary);
    if (!clean) {
      std::fprintf(
          stderr, "mpibatch: workers did not stop in time; the store is saved, aborting the job\n");
      env.abort(summary.exit_status);
    }
  } catch (const std::exception& e) {
    // Never leave workers waiting: take the job down.
    std::fprintf(stderr, "mpibatch: run failed: %s\n", e.what());
    session->abandon();
    env.abort(kExitRuntime);
  }
  env.broadcast(summary.exit_status);
  return summary;
}

}  // namespace mpibatch::detail
