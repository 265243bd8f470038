// run_erased(): every rank to its part of a run. Rank 0 opens the store and
// runs the master; the other ranks serve batches until told to stop.
#include <cstdio>
#include <memory>

#include "core/reported.hpp"
#include "engine/channel.hpp"
#include "engine/master.hpp"
#include "engine/run_session.hpp"
#include "engine/stop_signals.hpp"
#include "mpi/messaging.hpp"
#include "mpi/mpi_check.hpp"

namespace mpibatch::detail {

namespace {

// Host names of all ranks, gathered on rank 0 (empty elsewhere).
std::vector<std::string> gather_hosts(const Environment& env) {
  constexpr int kLen = 256;
  std::string mine = env.host();
  mine.resize(kLen, '\0');
  std::string all(env.rank() == 0 ? static_cast<std::size_t>(kLen * env.size()) : 0, '\0');
  MPI_Request request = MPI_REQUEST_NULL;
  mpi::check(
      MPI_Igather(mine.data(), kLen, MPI_CHAR, all.data(), kLen, MPI_CHAR, 0, env.comm(), &request),
      "MPI_Igather");
  mpi::wait(request);
  std::vector<std::string> hosts;
  for (int r = 0; env.rank() == 0 && r < env.size(); ++r)
    hosts.emplace_back(all.c_str() + r * kLen);
  return hosts;
}

}  // namespace

RunSummary run_erased(const Environment& env, const ErasedJob& job, const TaskSource& tasks,
                      const RunOptions& options, std::optional<std::uint64_t> task_count) {
  validate(options);
  RunOptions opt = options;
  if (opt.store.empty()) opt.store = job.info.name + ".h5";
  const std::vector<std::string> hosts = gather_hosts(env);
  StopSignals signals;

  if (env.rank() != 0) {
    RunSummary s;
    // 1: serve; else minus the status the master could not start with (it
    // says why): every rank exits with it, so mpirun's status is that one.
    if (const int go = env.broadcast(0); go != 1) {
      s.exit_status = go < 0 ? -go : kExitRuntime;
      return s;
    }
    serve(env, job);
    s.exit_status = env.broadcast(s.exit_status);
    return s;
  }

  // Rank 0: open everything first, then tell the workers whether to serve.
  std::unique_ptr<RunSession> session;
  std::unique_ptr<Channel> channel;
  try {
    session = std::make_unique<RunSession>(env, job.info, opt, hosts);
    channel = env.size() > 1 ? make_mpi_channel(env) : make_local_channel(job);
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

  RunSummary summary;
  try {
    bool clean = true;
    summary = run_master(job, tasks, task_count, opt, *channel, *session, signals, clean);
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
