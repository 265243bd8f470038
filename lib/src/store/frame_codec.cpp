#include "store/frame_codec.hpp"

#include <algorithm>

#include "core/value_types.hpp"
#include "mpibatch/error.hpp"
#include "store/row_columns.hpp"

namespace mpibatch::detail {

void Decoder::throw_corrupt(const char* what) {
  throw StoreCorruptError(what);
}

namespace {

void put_fields(Encoder& e, const std::vector<Field>& fields) {
  e.put<std::uint32_t>(static_cast<std::uint32_t>(fields.size()));
  for (const auto& f : fields) {
    e.put_str(f.name);
    e.put(f.type);
    e.put_str(f.unit);
    e.put_str(f.description);
  }
}

std::vector<Field> get_fields(Decoder& d) {
  std::vector<Field> fields(d.fits(d.get<std::uint32_t>(), 13));  // 3 lengths and a type
  for (auto& f : fields) {
    f.name = d.get_str();
    f.type = d.get<FieldType>();
    f.unit = d.get_str();
    f.description = d.get_str();
  }
  return fields;
}

void put_values(Encoder& e, const std::vector<Value>& values) {
  e.put_varint(values.size());
  for (const Value& v : values) {
    e.put<std::uint8_t>(static_cast<std::uint8_t>(v.index()));
    std::visit(
        [&e](const auto& x) {
          if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::string>) {
            e.put_varstr(x);
          } else {
            e.put(x);
          }
        },
        v);
  }
}

// Reads a record's fields whose width the log format decides: fixed in
// format 1, varints since format 2.
class RecordFields {
 public:
  RecordFields(Decoder& d, std::uint64_t format) : d_(d), v1_(format < 2) {}
  std::uint64_t count() { return v1_ ? d_.get<std::uint32_t>() : d_.get_varint(); }
  // A count of values (each at least a type byte and a byte).
  std::uint64_t values() { return d_.fits(count(), 2); }
  std::int64_t rank() { return v1_ ? d_.get<std::int32_t>() : d_.get_signed(); }
  std::int64_t run() { return v1_ ? d_.get<std::int64_t>() : d_.get_signed(); }
  std::string_view view() { return d_.get_view(count()); }
  void str(std::string& s) { s.assign(view()); }

 private:
  Decoder& d_;
  bool v1_;
};

// Reads one value as put_values writes it (a type byte, then the value) and
// passes it to fn as int64, double, bool or (a string) string_view.
template <class Fn>
void get_value(Decoder& d, RecordFields& f, Fn&& fn) {
  with_type(static_cast<FieldType>(d.get<std::uint8_t>()), [&](auto type) {
    using T = typename decltype(type)::value;
    if constexpr (std::is_same_v<T, std::string>) {
      fn(f.view());
    } else if constexpr (std::is_same_v<T, bool>) {
      const auto b = d.get<std::uint8_t>();
      if (b > 1) throw StoreCorruptError("record has a bool of value " + std::to_string(b));
      fn(b == 1);
    } else {
      fn(d.get<T>());
    }
  });
}

void get_values(Decoder& d, RecordFields& f, std::vector<Value>& values) {
  values.resize(f.values());
  for (Value& v : values) {
    get_value(d, f, [&v](auto x) {
      if constexpr (std::is_same_v<decltype(x), std::string_view>)
        v.emplace<std::string>(x);
      else
        v.emplace<decltype(x)>(x);
    });
  }
}

// Row's value of a column, encoded as put_values encodes a Value.
template <class E>
void put_cell(E& e, const ValueColumn& column, std::size_t row) {
  e.put(static_cast<std::uint8_t>(type_of(column)));
  std::visit(
      [&](const auto& col) {
        using T = typename std::decay_t<decltype(col)>::value_type;
        if constexpr (std::is_same_v<T, std::string>)
          e.put_varstr(col[row]);
        else if constexpr (std::is_same_v<T, std::uint8_t>)
          e.put(static_cast<bool>(col[row] != 0));
        else
          e.put(col[row]);
      },
      column);
}

}  // namespace

void encode_job(std::string& out, std::uint32_t id, const JobInfo& job) {
  Encoder e(out);
  e.put(FrameType::job);
  e.put(id);
  e.put_str(job.name);
  e.put(job.version);
  e.put_str(job.description);
  put_fields(e, job.params);
  put_fields(e, job.results);
}

JobInfo decode_job(Decoder& d, std::uint32_t& id) {
  id = d.get<std::uint32_t>();
  JobInfo job;
  job.name = d.get_str();
  job.version = d.get<std::int64_t>();
  job.description = d.get_str();
  job.params = get_fields(d);
  job.results = get_fields(d);
  return job;
}

namespace {

// A record's fields before its values: the one place their layout is written,
// for Records and for columnar batches alike.
struct RecordHead {
  const TaskKey& key;
  std::uint32_t job_id;
  Status status;
  std::int32_t rank;
  double start_time;
  double duration;
  std::int64_t run;
  std::string_view result;
  std::string_view error;
};

template <class E>
void put_head(E& e, const RecordHead& h) {
  e.put(h.key);
  e.put_varint(h.job_id);
  e.put(h.status);
  e.put_signed(h.rank);
  e.put(h.start_time);
  // Tables keep durations as float32: rounded here, a record reads the same
  // before its segment is written and after.
  e.put(static_cast<double>(static_cast<float>(h.duration)));
  e.put_signed(h.run);
  e.put_varstr(h.result);
  e.put_varstr(h.error);
}

}  // namespace

std::uint32_t get_record_row(Decoder& d, RowColumns& row, std::uint64_t format) {
  RecordFields f(d, format);
  row.keys.push_back(d.get<TaskKey>());
  const auto job_id = static_cast<std::uint32_t>(f.count());
  row.status.push_back(static_cast<std::int8_t>(d.get<Status>()));
  row.rank.push_back(static_cast<std::int32_t>(f.rank()));
  row.start_time.push_back(d.get<double>());
  row.duration.push_back(d.get<double>());
  row.run.push_back(f.run());
  const std::string_view result = f.view();
  row.result_sizes.push_back(result.size());
  row.results.append(result);
  row.add_error(f.view());
  for (auto* columns : {&row.values, &row.params}) {
    const std::uint64_t n = f.count();
    for (std::uint64_t c = 0; c < n; ++c) {
      const bool keep = c < columns->size();  // values beyond the fields are not stored
      get_value(d, f, [&](auto v) {
        if (!keep) return;
        if constexpr (std::is_same_v<decltype(v), std::string_view>)
          RowColumns::add_value((*columns)[c], std::string(v));
        else
          RowColumns::add_value((*columns)[c], v);
      });
    }
    RowColumns::add_defaults(*columns, std::min<std::uint64_t>(n, columns->size()));
  }
  return job_id;
}

void put_record(std::string& out, const Record& r, std::uint32_t job_id) {
  Encoder e(out);
  put_head(e,
           {r.key, job_id, r.status, r.rank, r.start_time, r.duration, r.run, r.result, r.error});
  put_values(e, r.values);
  put_values(e, r.params);
}

std::uint32_t get_record(Decoder& d, Record& r, std::uint64_t format) {
  RecordFields f(d, format);
  r.key = d.get<TaskKey>();
  const auto job_id = static_cast<std::uint32_t>(f.count());
  r.status = d.get<Status>();
  r.rank = static_cast<std::int32_t>(f.rank());
  r.start_time = d.get<double>();
  r.duration = d.get<double>();
  r.run = f.run();
  f.str(r.result);
  f.str(r.error);
  get_values(d, f, r.values);
  get_values(d, f, r.params);
  return job_id;
}

void encode_records(std::string& out, std::span<const Record> records,
                    std::span<const std::uint32_t> job_ids, std::vector<std::size_t>* offsets) {
  Encoder e(out);
  e.put(FrameType::records);
  e.put<std::uint32_t>(static_cast<std::uint32_t>(records.size()));
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (offsets != nullptr) offsets->push_back(out.size());
    put_record(out, records[i], job_ids[i]);
  }
}

// At most the bytes a row's cells take (type byte, value or length and text).
std::size_t cells_bound(const std::vector<ValueColumn>& columns) {
  std::size_t bytes = 0;
  for (const auto& c : columns) {
    if (const auto* text = std::get_if<3>(&c)) {
      for (const auto& t : *text) bytes += 1 + RawEncoder::kMaxVarint + t.size();
    } else {
      bytes += std::visit([](const auto& v) { return v.size(); }, c) * 9;
    }
  }
  return bytes;
}

void encode_records(std::string& out, const RecordBatch& b, std::uint32_t job_id,
                    std::vector<std::size_t>* offsets) {
  const std::size_t n = b.size();
  // Room for the worst case, written through a pointer, then trimmed: a
  // string append per field would cost more than the encoding itself.
  constexpr std::size_t kHeadBound =
      sizeof(TaskKey) + 1 + 2 * sizeof(double) + 7 * RawEncoder::kMaxVarint;
  const std::size_t base = out.size();
  out.resize(base + 1 + 4 + n * kHeadBound + b.results.size() + b.errors.size() +
             cells_bound(b.values) + cells_bound(b.params));
  RawEncoder e(out.data() + base);
  e.put(FrameType::records);
  e.put<std::uint32_t>(static_cast<std::uint32_t>(n));
  std::size_t result_at = 0, error_at = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (offsets != nullptr) offsets->push_back(static_cast<std::size_t>(e.at() - out.data()));
    const bool failed = b.status[i] == Status::failed;
    const std::string_view result(b.results.data() + result_at, b.result_sizes[i]);
    const std::string_view error(b.errors.data() + error_at, b.error_sizes[i]);
    result_at += b.result_sizes[i];
    error_at += b.error_sizes[i];
    put_head(e, {b.keys[i], job_id, b.status[i], b.rank[i], b.start_time[i], b.duration[i], b.run,
                 failed ? std::string_view() : result, error});
    // A failed row's values only when it failed with some (TaskFailed).
    const bool values = !failed || !std::all_of(b.values.begin(), b.values.end(),
                                                [i](const auto& c) { return is_stand_in(c, i); });
    e.put_varint(values ? b.values.size() : 0);
    for (std::size_t c = 0; values && c < b.values.size(); ++c) put_cell(e, b.values[c], i);
    e.put_varint(b.params.size());
    for (const auto& column : b.params) put_cell(e, column, i);
  }
  out.resize(static_cast<std::size_t>(e.at() - out.data()));
}

void decode_records(Decoder& d, std::uint64_t format,
                    const std::function<void(std::uint32_t, Record&&)>& emit) {
  const auto n = d.get<std::uint32_t>();
  for (std::uint32_t k = 0; k < n; ++k) {
    Record r;
    const std::uint32_t job_id = get_record(d, r, format);
    emit(job_id, std::move(r));
  }
}

void encode_run(std::string& out, const RunInfo& run) {
  Encoder e(out);
  e.put(FrameType::run);
  e.put(run.id);
  e.put(run.start_time);
  e.put(run.end_time);
  e.put_str(run.command_line);
  e.put(run.ranks);
  e.put<std::uint32_t>(static_cast<std::uint32_t>(run.hosts.size()));  // then each host
  for (const auto& h : run.hosts) e.put_str(h);
  e.put_str(run.slurm_job_id);
  e.put_str(run.slurm_nodelist);
  e.put(run.slurm_restart_count);
  e.put(run.state);
  e.put(run.exit_status);
  e.put(run.task_count);
  // Appended later: readers of the first releases stop before it.
  if (run.counts) {
    const RunCounts& c = *run.counts;
    e.put<std::uint8_t>(1);
    e.put(c.total);
    e.put(c.cached);
    e.put(c.computed);
    e.put(c.failed);
    e.put<std::uint32_t>(static_cast<std::uint32_t>(c.per_rank.size()));
    for (const auto n : c.per_rank) e.put(n);
  } else if (!run.task_spec.empty()) {
    e.put<std::uint8_t>(0);
  }
  if (!run.task_spec.empty()) e.put_str(run.task_spec);  // later still
}

RunInfo decode_run(Decoder& d) {
  RunInfo run;
  run.id = d.get<std::int64_t>();
  run.start_time = d.get<double>();
  run.end_time = d.get<double>();
  run.command_line = d.get_str();
  run.ranks = d.get<std::int32_t>();
  run.hosts.resize(d.fits(d.get<std::uint32_t>(), 4));
  for (auto& h : run.hosts) h = d.get_str();
  run.slurm_job_id = d.get_str();
  run.slurm_nodelist = d.get_str();
  run.slurm_restart_count = d.get<std::int32_t>();
  run.state = d.get<RunState>();
  run.exit_status = d.get<std::int32_t>();
  run.task_count = d.get<std::int64_t>();
  if (!d.done() && d.get<std::uint8_t>() == 1) {
    RunCounts c;
    c.total = d.get<std::int64_t>();
    c.cached = d.get<std::int64_t>();
    c.computed = d.get<std::int64_t>();
    c.failed = d.get<std::int64_t>();
    const auto ranks = d.get<std::uint32_t>();
    if (ranks > (1u << 24))
      throw StoreCorruptError("run frame with " + std::to_string(ranks) + " ranks");
    c.per_rank.resize(d.fits(ranks, 8));
    for (auto& n : c.per_rank) n = d.get<std::int64_t>();
    run.counts = std::move(c);
  }
  if (!d.done()) run.task_spec = d.get_str();
  return run;
}

void encode_tasks(std::string& out, std::int64_t run, std::span<const TaskKey> keys) {
  Encoder e(out);
  e.put(FrameType::tasks);
  e.put(run);
  e.put<std::uint64_t>(keys.size());
  out.append(reinterpret_cast<const char*>(keys.data()), keys.size_bytes());
}

std::int64_t decode_tasks(Decoder& d, std::vector<TaskKey>& keys) {
  const auto run = d.get<std::int64_t>();
  const auto n = d.get<std::uint64_t>();
  const std::size_t old = keys.size();
  keys.resize(old + d.fits(n, sizeof(TaskKey)));
  for (std::size_t i = 0; i < n; ++i) keys[old + i] = d.get<TaskKey>();
  return run;
}

}  // namespace mpibatch::detail
