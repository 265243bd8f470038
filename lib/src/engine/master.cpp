// The master (rank 0) of a run: reads tasks, looks them up in the store,
// sends the rest in batches and stores what comes back
// (docs/ARCHITECTURE.md follows a task through it).
#include "engine/master.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <optional>
#include <thread>

#include "engine/batch_sizer.hpp"
#include "engine/channel.hpp"
#include "engine/field_map.hpp"
#include "engine/progress.hpp"
#include "engine/stop_signals.hpp"
#include "mpi/messaging.hpp"
#include "mpibatch/run.hpp"

namespace mpibatch::detail {

namespace {

using Clock = std::chrono::steady_clock;

Clock::duration to_duration(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// Batches a worker holds: one it computes and two in hand. One in hand is not
// enough when the master is the bottleneck: a worker that ran dry naps (up to
// 1 ms) and answers late, and the master then waits for it.
constexpr std::size_t kInFlight = 3;
// Batches a second the master is sized for (it handles 30,000-41,000 of
// trivial tasks: docs/SCALING.md), leaving it time for the tasks.
constexpr double kBatchesPerSecond = 5000;
// The least waiting (seconds) that earns an early commit.
constexpr double kIdleCommitWait = 0.002;

enum class StopReason : std::uint8_t { none, signal, time_limit, fail_fast };

struct Task {
  std::uint64_t index = 0;
  TaskKey key;
  Bytes input;
  int attempt = 0;
  dispatch::Claim claim = 0;  // in the store, from look-up to append
};

// Drops the rows of b whose keep is 0 (b's keys are not filled yet).
void keep_rows(RecordBatch& b, const std::vector<std::uint8_t>& keep) {
  auto filter = [&keep](auto& v) {
    std::size_t out = 0;
    for (std::size_t i = 0; i < v.size(); ++i)
      if (keep[i]) v[out++] = std::move(v[i]);
    v.resize(out);
  };
  auto filter_bytes = [&keep](std::string& bytes, std::vector<std::uint32_t>& sizes) {
    std::string kept;
    std::size_t at = 0;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      if (keep[i]) kept.append(bytes, at, sizes[i]);
      at += sizes[i];
    }
    bytes = std::move(kept);
  };
  filter_bytes(b.results, b.result_sizes);
  filter_bytes(b.errors, b.error_sizes);
  filter(b.status);
  filter(b.start_time);
  filter(b.duration);
  filter(b.result_sizes);
  filter(b.error_sizes);
  for (auto* columns : {&b.values, &b.params})
    for (auto& c : *columns) std::visit(filter, c);
}

// What the progress log's start line says: the run's ranks and hosts as
// recorded when it began, and what the store holds already.
ProgressStart progress_start(const Store& store, std::int64_t run, const RunOptions& opt,
                             std::optional<std::uint64_t> task_count) {
  ProgressStart s{.tasks = task_count, .store = opt.store.string(), .stored = store.size()};
  for (const RunInfo& r : store.runs()) {
    if (r.id == run) {
      s.ranks = r.ranks;
      s.hosts = r.hosts;
    }
  }
  return s;
}

class Master {
 public:
  Master(const ErasedJob& job, const TaskSource& source, std::optional<std::uint64_t> task_count,
         const RunOptions& opt, Channel& channel, Store& store, std::int64_t run_id,
         const CrashCounts& crashes)
      : job_(job),
        source_(source),
        task_count_(task_count),
        opt_(opt),
        channel_(channel),
        store_(store),
        run_id_(run_id),
        crashes_(crashes),
        sizer_(opt.batch, std::max(opt.batch_seconds, channel.workers() / kBatchesPerSecond)),
        start_(progress_start(store, run_id, opt, task_count)),
        progress_(opt.progress, opt.progress_file, job.info.name, start_),
        in_flight_(static_cast<std::size_t>(channel.workers())),
        computing_since_(in_flight_.size()),
        stall_warned_(in_flight_.size(), false) {
    if (const char* floor = std::getenv("MPIBATCH_STALL_SECONDS")) stall_floor_ = std::atof(floor);
    if (const JobInfo* stored = store_.find_job(job.info.name, job.info.version)) {
      to_stored_params_ = FieldMap(job.info.params, stored->params);
      to_stored_results_ = FieldMap(job.info.results, stored->results);
    }
    // Room for every task's key at once, not rehashing the index as it grows.
    // The larger of the keys stored and the task count never exceeds what the
    // index will hold: a resumed run (its keys already in) asks for nothing.
    if (task_count_) {
      try {
        dispatch::reserve(store_, *task_count_);  // what this run may append or claim
      } catch (const std::bad_alloc&) {           // only a hint: the index grows as it goes
      }
    }
  }

  RunSummary run(const StopSignals& signals) {
    const auto start = Clock::now();
    auto last_commit = start;
    double waited = 0, commit_cost = 0.001;  // since the last commit; the last one's
    while (true) {
      if (!stopping_) {
        fill_queue();
        for (int w = 0; w < channel_.workers(); ++w) dispatch(w);
      }
      const bool idle = busy_workers() == 0;
      if (idle && queue_.empty() && source_done_) break;  // every task done
      if (stopping_ && idle) break;

      // Stop requests: signals, the time limit, a task that failed for good.
      if (!stopping_) {
        StopReason why = StopReason::none;
        if (signals.count() > 0 || interrupted_)
          why = StopReason::signal;
        else if (opt_.time_limit > 0 &&
                 seconds(Clock::now() - start) >= opt_.time_limit - opt_.grace)
          why = StopReason::time_limit;
        else if ((opt_.fail_fast && summary_.failed > 0) || halt_due())
          why = StopReason::fail_fast;
        if (why != StopReason::none) {
          stopping_ = true;
          stop_reason_ = why;
          stop_deadline_ = Clock::now() + to_duration(opt_.grace);
          // A known time limit ends the wait too, a little before it (Slurm kills then).
          if (opt_.time_limit > 0) {
            stop_deadline_ = std::min(stop_deadline_, start + to_duration(opt_.time_limit - 2));
          }
        }
      }
      if (stopping_ && (signals.count() > 1 || Clock::now() >= stop_deadline_)) break;  // at once

      int w = 0;
      Bytes results;
      const auto wait = std::chrono::milliseconds(idle ? 1 : 50);
      const auto before = Clock::now();
      const bool took = channel_.receive(wait, max_nap(), w, results);
      if (took) take_results(w, results);
      waited += seconds(Clock::now() - before);
      // A full memtable is committed at once, so that it goes to a segment
      // and is reused: memory stays bounded whatever the interval. Else the
      // interval, or sooner when what is uncommitted is worth it: work of
      // 50 commits' time (so commits cost trivial tasks at most 2 % of their
      // work), and the master has waited 3 commits' time since the last
      // (so it commits when it would wait anyway). A kill then reruns the
      // results of the last few tasks, not of the last interval.
      if (dispatch::commit_due(store_) ||
          seconds(Clock::now() - last_commit) >= opt_.checkpoint_seconds ||
          (uncommitted_work_ >= 50 * commit_cost &&
           waited >= std::max(kIdleCommitWait, 3 * commit_cost))) {
        const auto t = Clock::now();
        commit();
        last_commit = Clock::now();
        commit_cost = seconds(last_commit - t);
        waited = 0;
        uncommitted_work_ = 0;
      }
      progress_.update(counts());
      // Only with nothing left to take: results that wait are no stall.
      if (!took && Clock::now() >= next_stall_check_) warn_stalled();
    }
    return finish();
  }

 public:
  // Commits with the run's counts, so that `mpibatch status` reads them
  // from the run's metadata instead of the whole store.
  void commit() {
    const ProgressCounts c = counts();
    RunCounts rc;
    rc.total = static_cast<std::int64_t>(c.total);
    rc.cached = static_cast<std::int64_t>(c.cached);
    rc.computed = static_cast<std::int64_t>(c.computed);
    rc.failed = static_cast<std::int64_t>(c.failed);
    rc.per_rank = per_rank_;
    store_.update_run(run_id_, rc);
    store_.commit();
  }

 private:
  int busy_workers() const {
    int n = 0;
    for (const auto& q : in_flight_) n += q.empty() ? 0 : 1;
    return n;
  }

  ProgressCounts counts() const {
    ProgressCounts c;
    c.total = source_done_ ? next_index_ : std::max(next_index_, task_count_.value_or(0));
    c.total_known = source_done_ || task_count_.has_value();
    c.cached = summary_.cached;
    c.computed = summary_.computed;
    c.failed = summary_.failed;
    for (const auto& q : in_flight_)
      for (const auto& b : q) c.in_flight += b.size();
    return c;
  }

  // Reads ahead of dispatch (a bounded window: joblib's pre_dispatch), looks
  // keys up in batches and queues only what the store does not have.
  void fill_queue() {
    const std::size_t window =
        read_ahead(static_cast<std::size_t>(channel_.workers()), sizer_.current());
    std::vector<Task> chunk;
    std::vector<TaskKey> keys;
    std::vector<Lookup> found;
    std::vector<dispatch::Claim> claims;
    while (!source_done_ && queue_.size() < window) {
      chunk.clear();
      keys.clear();
      Bytes input, key_input;
      while (chunk.size() < 4096) {
        if (!source_(input)) {
          source_done_ = true;
          break;
        }
        Task t;
        t.index = next_index_++;
        t.key = job_.key(input, key_input);
        t.input = std::move(input);
        keys.push_back(t.key);
        chunk.push_back(std::move(t));
      }
      if (chunk.empty()) break;
      // One index access a task: the look-up claims what is to be computed,
      // and the result's append goes straight to the claimed slot.
      found.resize(keys.size());
      claims.resize(keys.size());
      dispatch::claim(store_, keys, found, claims, !opt_.skip_failed);
      if (opt_.task_spec.empty()) store_.append_tasks(run_id_, keys);
      for (std::size_t i = 0; i < chunk.size(); ++i) {
        switch (found[i]) {
          case Lookup::ok:
          case Lookup::claimed:  // the same task again in this stream: computed once
            ++summary_.cached;
            break;
          case Lookup::failed:  // and skip_failed
            ++summary_.failed;
            break;
          case Lookup::missing:
            chunk[i].claim = claims[i];
            if (!quarantine(chunk[i])) queue_.push_back(std::move(chunk[i]));
            break;
        }
      }
    }
  }

  // How late the master may notice a result without idling anyone (a worker
  // that sends one still holds the batches behind it): a quarter of the least
  // work any worker holds in hand, from 1 ms to 20 ms, since each wake-up
  // preempts a worker sharing the master's cores.
  std::chrono::microseconds max_nap() const {
    const double per_task = sizer_.seconds_per_task();
    if (per_task <= 0 || stopping_) return mpi::kMaxNap;
    std::size_t least = SIZE_MAX;
    for (const auto& q : in_flight_) {
      std::size_t in_hand = 0;  // behind the batch being computed
      for (std::size_t b = 1; b < q.size(); ++b) in_hand += q[b].size();
      least = std::min(least, in_hand);
    }
    const double nap = 0.25 * per_task * static_cast<double>(least);
    return std::chrono::microseconds(static_cast<std::int64_t>(
        1e6 * std::clamp(nap, 1e-6 * static_cast<double>(mpi::kMaxNap.count()), 0.02)));
  }

  // Keeps worker w with kInFlight batches.
  void dispatch(int w) {
    auto& q = in_flight_[static_cast<std::size_t>(w)];
    while (q.size() < kInFlight && !queue_.empty()) {
      const std::size_t left = source_done_ ? queue_.size() : 0;
      const std::size_t n =
          std::min(queue_.size(), sizer_.next(left, static_cast<std::size_t>(channel_.workers())));
      Batch msg;
      std::vector<Task> tasks;
      msg.sizes.reserve(n);
      tasks.reserve(n);
      // A task that crashed a worker before runs alone: if it crashes
      // again, it takes no other task of its batch down with it.
      for (std::size_t i = 0; i < n; ++i) {
        if (i > 0 && crashed(queue_.front())) break;
        tasks.push_back(std::move(queue_.front()));
        queue_.pop_front();
        msg.inputs += tasks.back().input;
        msg.sizes.push_back(static_cast<std::uint32_t>(tasks.back().input.size()));
        if (crashed(tasks.back())) break;
      }
      channel_.send(w, to_bytes(msg));
      if (q.empty()) computing_since_[static_cast<std::size_t>(w)] = Clock::now();
      q.push_back(std::move(tasks));
    }
  }

  void take_results(int w, Bytes& bytes) {
    auto& q = in_flight_.at(static_cast<std::size_t>(w));
    if (q.empty())
      throw Error("worker " + std::to_string(w + 1) + " sent results it was not asked for");
    ResultBatch rb = from_bytes<ResultBatch>(bytes);
    std::vector<Task> tasks = std::move(q.front());
    q.pop_front();
    computing_since_[static_cast<std::size_t>(w)] = Clock::now();  // the next batch, if any
    stall_warned_[static_cast<std::size_t>(w)] = false;
    if (const std::string why = misfit(rb, tasks.size(), job_.info); !why.empty())
      throw Error("worker " + std::to_string(w + 1) + " returned bad results: " + why);
    sizer_.observe(tasks.size(), rb.seconds);
    uncommitted_work_ += rb.seconds;
    settle(rb, tasks, channel_.rank(w));
  }

  // A batch that has run ten times as long as its tasks should take, and at
  // least a minute (MPIBATCH_STALL_SECONDS), is named once: a hung task, or
  // a worker stopped (SIGSTOP) or swapping. Only once a task time is known.
  void warn_stalled() {
    const auto now = Clock::now();
    next_stall_check_ = now + std::chrono::seconds(1);
    const double per_task = sizer_.seconds_per_task();
    if (per_task <= 0) return;
    for (std::size_t w = 0; w < in_flight_.size(); ++w) {
      if (in_flight_[w].empty() || stall_warned_[w]) continue;
      const std::size_t n = in_flight_[w].front().size();
      const double expected = per_task * static_cast<double>(n);
      const double running = seconds(now - computing_since_[w]);
      if (running < std::max(10 * expected, stall_floor_)) continue;
      stall_warned_[w] = true;
      const int rank = channel_.rank(static_cast<int>(w));
      const auto& hosts = start_.hosts;
      const std::string host = static_cast<std::size_t>(rank) < hosts.size()
                                   ? " on " + hosts[static_cast<std::size_t>(rank)]
                                   : std::string();
      auto span = [](double s) {
        if (s >= 60) return format_duration(s);
        char text[32];
        std::snprintf(text, sizeof text, "%.3g s", s);
        return std::string(text);
      };
      progress_.warn("rank " + std::to_string(rank) + host + " has run a batch of " +
                     std::to_string(n) + (n == 1 ? " task" : " tasks") + " for " + span(running) +
                     ", " + std::to_string(static_cast<long long>(running / expected)) +
                     " times the " + span(expected) +
                     " expected: a task that hangs, or a stopped or starved process? "
                     "(--task-timeout ends such tasks: exec's commands, any job's with --isolate)");
    }
  }

  bool crashed(const Task& t) const { return !crashes_.empty() && crashes_.count(t.key) > 0; }

  // Stores a task that crashed its worker often enough as failed, with its
  // params, instead of running it again (unless retry_crashed).
  bool quarantine(Task& t) {
    if (crashes_.empty() || opt_.retry_crashed) return false;
    const auto it = crashes_.find(t.key);
    if (it == crashes_.end() || it->second.count < kQuarantineCrashes) return false;
    ErasedJob stored = job_;
    stored.call = [&](std::string_view input, std::vector<Value>&,
                      std::vector<Value>& params) -> Bytes {
      if (job_.params) job_.params(input, params);
      throw Error(crash_message(it->second) + "; not run again (run --retry-crashed to)");
    };
    Batch one;
    one.inputs = t.input;
    one.sizes.push_back(static_cast<std::uint32_t>(t.input.size()));
    ResultBatch rb = compute(stored, one);
    t.attempt = opt_.retries;  // no retry either
    std::vector<Task> tasks;
    tasks.push_back(std::move(t));
    settle(rb, tasks, -1);
    return true;
  }

  // Stores a batch's results (rank -1: the master's own records); failed
  // tasks with attempts left go back to the queue.
  void settle(ResultBatch& rb, std::vector<Task>& tasks, int rank) {
    RecordBatch& b = rb.records;
    std::vector<std::uint8_t> keep(tasks.size(), 1);
    bool all = true;
    // Tasks a stop signal cut short are not results: left unsettled (their
    // claims are released at the end) they run again on resume. A worker
    // that saw one got a stop signal: the run stops, as if the master had.
    for (const std::uint32_t i : rb.interrupted) {
      keep[i] = 0;
      all = false;
      interrupted_ = true;
    }
    // Failed tasks with retries left go back to the queue, first.
    for (std::size_t i = tasks.size(); i-- > 0;) {
      Task& t = tasks[i];
      if (!keep[i]) continue;
      if (b.status[i] == Status::failed && t.attempt < opt_.retries) {
        ++t.attempt;
        keep[i] = 0;
        all = false;
        queue_.push_front(std::move(t));
      }
    }
    if (!all) keep_rows(b, keep);
    b.job = job_.info.name;
    b.job_version = job_.info.version;
    b.run = run_id_;
    b.rank.assign(b.status.size(), std::max(rank, 0));
    b.keys.clear();
    b.keys.reserve(b.status.size());
    std::vector<dispatch::Claim> claims;
    claims.reserve(b.status.size());
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      if (!keep[i]) continue;
      b.keys.push_back(tasks[i].key);
      claims.push_back(tasks[i].claim);
      ++(b.status[b.keys.size() - 1] == Status::ok ? summary_.computed : summary_.failed);
      // A quarantined task (rank -1) was not computed: --halt counts this run's failures.
      if (b.status[b.keys.size() - 1] != Status::ok && rank >= 0) ++failed_here_;
    }
    if (rank >= 0) {
      const auto r = static_cast<std::size_t>(rank);
      if (per_rank_.size() <= r) per_rank_.resize(r + 1);
      per_rank_[r] += static_cast<std::int64_t>(b.keys.size());
    }
    to_stored_params_.apply(b.params, b.size());
    to_stored_results_.apply(b.values, b.size());
    dispatch::append(store_, b, claims);
  }

  // --halt: this run's failures reached the count or the rate asked for.
  bool halt_due() const {
    if (opt_.max_failures > 0 && failed_here_ >= opt_.max_failures) return true;
    const double done = static_cast<double>(summary_.computed + failed_here_);
    const double rate = opt_.max_failure_rate;
    return rate > 0 && done >= std::ceil(1 / rate) &&
           static_cast<double>(failed_here_) >= rate * done;
  }

  RunSummary finish() {
    const bool complete = source_done_ && queue_.empty() && busy_workers() == 0 && !interrupted_;
    summary_.total = next_index_;
    if (complete) {
      summary_.state =
          summary_.failed > 0 && opt_.fail_fast ? RunState::failed : RunState::finished;
      summary_.exit_status = summary_.failed > 0 ? kExitFailedTasks : kExitOk;
    } else if (stop_reason_ == StopReason::fail_fast) {
      summary_.state = RunState::failed;
      summary_.exit_status = kExitFailedTasks;
    } else {
      summary_.state = RunState::stopped;
      summary_.exit_status = kExitIncomplete;
    }
    summary_.run_id = run_id_;
    commit();
    progress_.finish(counts(), to_string(summary_.state));
    return summary_;
  }

 public:
  // Results that arrive while the workers are told to stop are kept too.
  void take_late_results(int w, Bytes& bytes) { take_results(w, bytes); }

  // Until when the workers may take to say goodbye. A stop has one deadline
  // for collecting what is in flight, before and after the goodbyes are asked
  // for (so a time limit is kept); the short floor lets idle workers answer,
  // and all a second signal leaves them. After a finished run every worker is
  // idle and answers at once.
  Clock::time_point goodbye_deadline(const StopSignals& signals) const {
    const auto now = Clock::now();
    if (!stopping_) return now + to_duration(std::max(5.0, opt_.grace));
    if (signals.count() > 1) return now + std::chrono::seconds(1);
    return std::max(stop_deadline_, now + std::chrono::milliseconds(500));
  }

 private:
  const ErasedJob& job_;
  const TaskSource& source_;
  const std::optional<std::uint64_t> task_count_;
  const RunOptions& opt_;
  Channel& channel_;
  Store& store_;
  std::int64_t run_id_;
  const CrashCounts& crashes_;
  FieldMap to_stored_params_, to_stored_results_;  // Store::define_job may widen
  BatchSizer sizer_;
  ProgressStart start_;
  Progress progress_;
  std::deque<Task> queue_;
  std::vector<std::deque<std::vector<Task>>> in_flight_;  // per worker, oldest first
  std::vector<Clock::time_point> computing_since_;        // per worker: its oldest batch began
  std::vector<bool> stall_warned_;                        // per worker, about its oldest batch
  Clock::time_point next_stall_check_{};
  double stall_floor_ = 60;  // seconds
  std::uint64_t next_index_ = 0;
  bool source_done_ = false;
  bool stopping_ = false;
  Clock::time_point stop_deadline_{};
  StopReason stop_reason_ = StopReason::none;
  bool interrupted_ = false;       // a worker's task was cut short by a stop signal
  double uncommitted_work_ = 0;    // compute seconds of the results taken since the last commit
  std::uint64_t failed_here_ = 0;  // tasks this run computed that failed for good
  RunSummary summary_;
  std::vector<std::int64_t> per_rank_;  // tasks computed (ok or failed) by each rank
};

}  // namespace

RunSummary run_master(const ErasedJob& job, const TaskSource& tasks,
                      std::optional<std::uint64_t> task_count, const RunOptions& options,
                      Channel& channel, RunSession& session, const StopSignals& signals,
                      bool& clean) {
  Master master(job, tasks, task_count, options, channel, session.store(), session.run_id(),
                session.crashes());
  RunSummary summary = master.run(signals);
  // Workers finish the batch they hold; results that come are kept.
  clean = channel.stop(master.goodbye_deadline(signals),
                       [&](int w, Bytes& b) { master.take_late_results(w, b); });
  dispatch::release_claims(session.store());  // tasks of a stopped run that never came back
  master.commit();                            // with the counts of results that came late
  return summary;
}

}  // namespace mpibatch::detail
