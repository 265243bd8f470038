// What the fuzz targets share: a folder made once per process, files
// written from an input, and a small real store (every field type, failed
// rows, result bytes, a task list and a task_spec run) made by the library.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "mpibatch/error.hpp"
#include "mpibatch/store.hpp"
#include "mpibatch/task_key.hpp"

namespace mpibatch::fuzz {

namespace fs = std::filesystem;

// A finding: says what was wrong and aborts, which libFuzzer reports with the input.
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "%s\n", what);
  std::abort();
}

// A fresh folder under TMPDIR (or /tmp), removed when the process exits.
inline const fs::path& work_dir() {
  static const fs::path dir = [] {
    std::string tmpl = (fs::temp_directory_path() / "mpibatch-fuzz-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(work_dir(), ec);
    });
    return fs::path(tmpl);
  }();
  return dir;
}

// Replaces file with the bytes (a new inode: mappings of the old one stay valid).
inline void write_file(const fs::path& file, std::string_view bytes) {
  const fs::path tmp = file.string() + ".new";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || ::write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    std::perror(tmp.c_str());
    std::abort();
  }
  ::close(fd);
  fs::rename(tmp, file);
}

inline std::string read_bytes(const fs::path& file) {
  std::string out;
  if (FILE* f = std::fopen(file.c_str(), "rb")) {
    char buf[65536];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
    std::fclose(f);
  }
  return out;
}

// The job of the fuzz stores: a param and a result of every type.
inline JobInfo fuzz_job() {
  return JobInfo{
      "fz",
      1,
      "fuzz job",
      {Field{"n", FieldType::int64, "", "n"}, Field{"x", FieldType::float64, "m", "x"},
       Field{"b", FieldType::boolean, "", "b"}, Field{"s", FieldType::string, "", "s"}},
      {Field{"v", FieldType::float64, "", "v"}, Field{"t", FieldType::string, "", "t"},
       Field{"k", FieldType::int64, "", "k"}, Field{"ok", FieldType::boolean, "", "ok"}}};
}

// A second job, of no params, so that a table has two groups.
inline JobInfo narrow_job() {
  return JobInfo{"nar", 2, "", {}, {Field{"y", FieldType::int64, "", ""}}};
}

inline TaskKey fuzz_key(std::uint64_t i) {
  return task_key("fz", 1, std::to_string(i));
}

// Record i of fuzz_job: every third fails (the sixth with values).
inline Record fuzz_record(std::uint64_t i, std::int64_t run) {
  Record r;
  r.key = fuzz_key(i);
  r.job = "fz";
  r.run = run;
  r.rank = static_cast<std::int32_t>(i % 3);
  r.start_time = 1.7e9 + static_cast<double>(i);
  r.duration = 0.25 * static_cast<double>(i);
  r.params = {std::int64_t(i), 0.5 * static_cast<double>(i), i % 2 == 0, "s" + std::to_string(i)};
  if (i % 3 == 2) {
    r.status = Status::failed;
    r.error = "failed " + std::to_string(i);
    if (i % 6 == 5) r.values = {1.5, std::string("partial"), std::int64_t(-1), false};
  } else {
    r.result = std::string(i % 4, 'r');
    r.values = {static_cast<double>(i), "t" + std::to_string(i), std::int64_t(i) * 7, true};
  }
  return r;
}

// Writes a store at path whose sidecar holds one base table with both jobs,
// a run with a task_spec and one with a task list and counts. With
// copy_log, a second writer then appends records and commits, and its log
// is copied there before it closes (which flushes a segment). compress: the
// tables' deflate level (their key index then holds the keys).
inline void make_store(const fs::path& path, const fs::path* copy_log = nullptr, int compress = 0) {
  StoreOptions writer;
  writer.compress = compress;
  {
    Store s = Store::open(path, writer);
    s.define_job(fuzz_job());
    s.define_job(narrow_job());
    RunInfo spec;
    spec.command_line = "mpibatch run fz --grid n=0..5";
    spec.task_spec = "{\"job\":\"fz\"}";
    const std::int64_t r1 = s.begin_run(spec);
    std::vector<Record> records;
    for (std::uint64_t i = 0; i < 6; ++i) records.push_back(fuzz_record(i, r1));
    s.append(records);
    s.end_run(r1, RunState::finished, kExitFailedTasks);
    RunInfo listed;
    listed.hosts = {"node1", "node2"};
    listed.slurm_job_id = "42";
    const std::int64_t r2 = s.begin_run(listed);
    std::vector<TaskKey> keys;
    for (std::uint64_t i = 6; i < 9; ++i) keys.push_back(fuzz_key(i));
    s.append_tasks(r2, keys);
    Record y;
    y.key = task_key("nar", 2, "y");
    y.job = "nar";
    y.job_version = 2;
    y.run = r2;
    y.values = {std::int64_t{3}};
    records = {fuzz_record(6, r2), fuzz_record(8, r2), y};
    s.append(records);
    s.update_run(r2, RunCounts{3, 0, 2, 1, {0, 2, 1}});
    s.end_run(r2, RunState::stopped, kExitIncomplete);
    s.commit();
    s.compact();
    s.close();
  }
  if (copy_log == nullptr) return;
  Store s = Store::open(path, writer);
  const std::int64_t r3 = s.begin_run(RunInfo{});
  std::vector<Record> records;
  for (std::uint64_t i = 9; i < 13; ++i) records.push_back(fuzz_record(i, r3));
  s.append(records);
  s.update_run(r3, RunCounts{4, 0, 3, 1, {4}});
  s.append_tasks(r3, std::vector<TaskKey>{fuzz_key(9), fuzz_key(10)});
  s.end_run(r3, RunState::finished, kExitOk);
  s.commit();
  for (const auto& e : fs::directory_iterator(Store::sidecar(path)))
    if (e.path().extension() == ".log") fs::copy_file(e.path(), *copy_log);
  s.close();
}

// Reads everything a reader can: an input whose reading breaks a promise
// (any exception but mpibatch::Error, a crash) is what the targets look for.
inline void read_all(const Store& s) {
  (void)s.problems();
  (void)s.jobs();
  (void)s.runs();
  (void)s.size();
  std::vector<TaskKey> keys;
  s.for_each([&keys](const Record& r) { keys.push_back(r.key); });
  for (std::uint64_t i = 0; i < 14; ++i) keys.push_back(fuzz_key(i));
  std::vector<Lookup> found(keys.size());
  s.lookup(keys, found);
  for (std::size_t i = 0; i < keys.size() && i < 32; ++i) (void)s.get(keys[i]);
  for (const RunInfo& r : s.runs()) s.for_each_task(r.id, [](const TaskKey&, const Record*) {});
}

}  // namespace mpibatch::fuzz
