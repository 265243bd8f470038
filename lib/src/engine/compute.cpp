// A batch's computation, shared by MPI workers and the local channel: each
// task's values checked against its job's fields, the results as columns.
#include <chrono>
#include <exception>
#include <limits>

#include "core/value_types.hpp"
#include "engine/channel.hpp"
#include "engine/crash_records.hpp"
#include "engine/stop_signals.hpp"
#include "mpibatch/run.hpp"

namespace mpibatch::detail {

namespace {

// A job's values must match its fields; a mismatch fails the task (with
// this message) rather than the run.
void check_values(const std::string& job, const char* what, const std::vector<Field>& fields,
                  const std::vector<Value>& values) {
  if (std::string why = misfit(fields, values, what); !why.empty())
    throw Error("job " + job + ": " + why);
}

std::vector<ValueColumn> empty_columns(const std::vector<Field>& fields, std::size_t rows) {
  std::vector<ValueColumn> columns;
  for (const Field& f : fields) {
    columns.push_back(empty_column(f.type));
    std::visit([rows](auto& c) { c.reserve(rows); }, columns.back());
  }
  return columns;
}

// Appends one row: values (checked against the columns' types), or the
// stand-ins of a failed task when values is null (NaN, 0, false, "").
void push_row(std::vector<ValueColumn>& columns, const std::vector<Value>* values) {
  for (std::size_t f = 0; f < columns.size(); ++f) {
    std::visit(
        [&](auto& column) {
          using T = typename std::decay_t<decltype(column)>::value_type;
          if (values == nullptr) {
            if constexpr (std::is_same_v<T, double>)
              column.push_back(std::numeric_limits<double>::quiet_NaN());
            else
              column.push_back(T{});
          } else if constexpr (std::is_same_v<T, std::uint8_t>) {
            column.push_back(std::get<bool>((*values)[f]) ? 1 : 0);
          } else {
            column.push_back(std::get<T>((*values)[f]));
          }
        },
        columns[f]);
  }
}

}  // namespace

ResultBatch compute(const ErasedJob& job, const Batch& batch) {
  using Clock = std::chrono::steady_clock;
  if (const std::string why = misfit(batch); !why.empty()) throw Error(why);
  const std::size_t n = batch.sizes.size();
  ResultBatch out;
  RecordBatch& r = out.records;
  r.status.reserve(n);
  r.start_time.reserve(n);
  r.duration.reserve(n);
  r.result_sizes.reserve(n);
  r.error_sizes.reserve(n);
  r.values = empty_columns(job.info.results, n);
  r.params = empty_columns(job.info.params, n);
  std::vector<Value> values, params;
  Bytes result, key_scratch;
  const bool recording = crash_recording();
  // One wall-clock reading per batch; task start times follow the steady clock.
  const double wall0 =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const auto t0 = Clock::now();
  auto ts = t0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string_view input(batch.inputs.data() + at, batch.sizes[i]);
    at += batch.sizes[i];
    values.clear();
    params.clear();
    std::string error;
    bool threw = true;
    try {
      if (tasks_interrupted()) throw InterruptedError("not started: the run is stopping");
      if (recording) crash_task_begin(job.key(input, key_scratch));
      result = job.call(input, values, params);
      check_values(job.info.name, "result", job.info.results, values);
      if (result.size() > 0xFFFFFFFFu) throw Error("a result larger than 4 GiB cannot be stored");
      threw = false;
    } catch (const TaskFailed& e) {
      error = e.what();
      values = e.values();
      if (!misfit(job.info.results, values, "result").empty()) values.clear();
    } catch (const InterruptedError& e) {
      values.clear();
      error = e.what();
      out.interrupted.push_back(static_cast<std::uint32_t>(i));
      note_interrupted();
    } catch (const std::exception& e) {
      values.clear();  // stand-ins, whatever the task had filled in
      error = e.what();
    } catch (...) {
      values.clear();
      error = "unknown exception (not derived from std::exception)";
    }
    if (recording) crash_task_end();
    if (threw && error.empty()) error = "failed (an exception with an empty message)";
    const auto te = Clock::now();
    r.start_time.push_back(wall0 + std::chrono::duration<double>(ts - t0).count());
    r.duration.push_back(std::chrono::duration<double>(te - ts).count());
    ts = te;
    // Params are known even when the task failed: they are read first.
    bool params_ok = true;
    try {
      check_values(job.info.name, "param", job.info.params, params);
    } catch (const std::exception& e) {
      params_ok = false;
      if (error.empty()) error = e.what();
    }
    push_row(r.params, params_ok ? &params : nullptr);
    const bool ok = error.empty();
    r.status.push_back(ok ? Status::ok : Status::failed);
    r.result_sizes.push_back(ok ? static_cast<std::uint32_t>(result.size()) : 0);
    if (ok) r.results += result;
    r.error_sizes.push_back(static_cast<std::uint32_t>(error.size()));
    r.errors += error;
    push_row(r.values, ok || !values.empty() ? &values : nullptr);
  }
  out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return out;
}

}  // namespace mpibatch::detail
