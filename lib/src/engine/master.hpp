// Rank 0's part of a run (master.cpp).
#pragma once

#include <cstdint>
#include <optional>

#include "engine/channel.hpp"
#include "engine/run_session.hpp"
#include "engine/stop_signals.hpp"
#include "mpibatch/run.hpp"

namespace mpibatch::detail {

// Dispatches tasks over channel until every one is done or a stop request
// (signals, the time limit, fail-fast), then stops the workers and commits
// what came back to session's store. clean is false when not every worker
// said goodbye in time. Throws Error (store, MPI); the caller ends the run.
RunSummary run_master(const ErasedJob& job, const TaskSource& tasks,
                      std::optional<std::uint64_t> task_count, const RunOptions& options,
                      Channel& channel, RunSession& session, const StopSignals& signals,
                      bool& clean);

}  // namespace mpibatch::detail
