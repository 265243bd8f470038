// Helpers shared by the tests: a temporary folder and deterministic records.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "mpibatch/serialization.hpp"
#include "mpibatch/store.hpp"
#include "mpibatch/store_dispatch.hpp"
#include "mpibatch/task_key.hpp"

namespace mpibatch::test_support {

// A fresh folder under the system temp folder, removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "mpibatch-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all, ec);
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// The job every generated record belongs to.
inline JobInfo demo_job(std::int64_t version = 1) {
  return JobInfo{"demo",
                 version,
                 "test job",
                 {Field{"i", FieldType::int64, "", "index"}},
                 {Field{"n", FieldType::int64, "", "the index again"},
                  Field{"half", FieldType::float64, "m", "i / 2"},
                  Field{"even", FieldType::boolean, "", "i is even"},
                  Field{"label", FieldType::string, "", "i in words"}}};
}

inline TaskKey demo_key(std::uint64_t i, std::int64_t version = 1) {
  return task_key("demo", version, to_bytes(i));
}

// Record i: contents derived from i only, so any process can check it.
// Every 11th fails.
inline Record demo_record(std::uint64_t i, std::int64_t run = 1, std::int64_t version = 1) {
  Record r;
  r.key = demo_key(i, version);
  r.job = "demo";
  r.job_version = version;
  r.rank = static_cast<std::int32_t>(i % 4);
  r.start_time = 1.7e9 + static_cast<double>(i);
  r.duration = static_cast<double>(i) / 1024;  // float32, as stored
  r.run = run;
  r.params = {static_cast<std::int64_t>(i)};
  if (i % 11 == 0) {
    r.status = Status::failed;
    r.error = "boom " + std::to_string(i) + " \xc3\xa9";  // UTF-8 survives
  } else {
    std::vector<std::uint64_t> payload(i % 37, i * 3);
    r.result = to_bytes(payload);
    r.values = {static_cast<std::int64_t>(i), static_cast<double>(i) / 2, i % 2 == 0,
                "n" + std::to_string(i)};
  }
  return r;
}

// Record i as the checked-in fixtures hold it: earlier builds wrote durations
// of i / 1000 s, which read back as float32, as tables now keep them.
inline Record fixture_record(std::uint64_t i, std::int64_t run = 1) {
  Record r = demo_record(i, run);
  r.duration = static_cast<float>(static_cast<double>(i) * 1e-3);
  return r;
}

// The columnar form of records (all of demo_job), built column by column.
inline RecordBatch to_batch(const std::vector<Record>& records) {
  RecordBatch b;
  b.job = "demo";
  b.run = records.front().run;
  b.values = {std::vector<std::int64_t>(), std::vector<double>(), std::vector<std::uint8_t>(),
              std::vector<std::string>()};
  b.params = {std::vector<std::int64_t>()};
  for (const Record& r : records) {
    b.keys.push_back(r.key);
    b.status.push_back(r.status);
    b.rank.push_back(r.rank);
    b.start_time.push_back(r.start_time);
    b.duration.push_back(r.duration);
    b.results += r.result;
    b.result_sizes.push_back(static_cast<std::uint32_t>(r.result.size()));
    b.errors += r.error;
    b.error_sizes.push_back(static_cast<std::uint32_t>(r.error.size()));
    const bool ok = r.status == Status::ok;
    std::get<0>(b.values[0]).push_back(ok ? std::get<std::int64_t>(r.values[0]) : 0);
    std::get<1>(b.values[1]).push_back(ok ? std::get<double>(r.values[1]) : std::nan(""));
    std::get<2>(b.values[2]).push_back(ok && std::get<bool>(r.values[2]) ? 1 : 0);
    std::get<3>(b.values[3]).push_back(ok ? std::get<std::string>(r.values[3]) : "");
    std::get<0>(b.params[0]).push_back(std::get<std::int64_t>(r.params[0]));
  }
  return b;
}

// A store's table files in its sidecar, by name (segments in order; the base table's
// name starts with "base-"): tables(store, true) is the segments only.
inline std::vector<std::filesystem::path> tables(const std::filesystem::path& store,
                                                 bool segments_only = false) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(Store::sidecar(store))) {
    const bool base = e.path().filename().string().starts_with("base-");
    if (e.path().extension() == ".h5" && !(segments_only && base)) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The base table's file, or an empty path.
inline std::filesystem::path base_table(const std::filesystem::path& store) {
  for (const auto& t : tables(store))
    if (t.filename().string().starts_with("base-")) return t;
  return {};
}

}  // namespace mpibatch::test_support

namespace mpibatch::test_support {

// Records per commit of the crash writer: deterministic from where it started
// and how many commits it made, so the test knows every commit boundary.
inline std::uint64_t crash_batch_size(std::uint64_t start, std::uint64_t commit_no) {
  return 1 + (commit_no * 7919 + start) % 40;
}

}  // namespace mpibatch::test_support
