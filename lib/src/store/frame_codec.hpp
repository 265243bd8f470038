// Binary encoding of what the store logs: job definitions, records, run
// updates, task-list chunks and commit marks. Native byte order: a store is
// portable across machines of one platform (like task keys).
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "mpibatch/store.hpp"
#include "mpibatch/store_dispatch.hpp"

namespace mpibatch::detail {

struct RowColumns;

// A records frame holds one append() batch; its records name their job by
// the id a job frame earlier in the same log gave it (ids are per log file).
enum class FrameType : std::uint8_t { job = 1, records = 2, run = 3, tasks = 4, commit = 5 };

// The log's own format, in its header. 2: a record's ids, rank, run, counts
// and lengths are varints (a third fewer bytes to write and sync than 1,
// which fixed them at 4 or 8 bytes). 3: the same encoding, but a job may be
// defined again wider, and a failed record may carry result values: builds
// that would drop those refuse the log. Older logs are still replayed.
inline constexpr std::uint64_t kLogFormat = 3;

// Writes into memory the caller has made room for: no bounds checks, no
// size updates (the record hot path, which sizes a whole batch at once).
class RawEncoder {
 public:
  explicit RawEncoder(char* at) : at_(at) {}
  template <class T>
  requires std::is_trivially_copyable_v<T>
  void put(const T& v) {
    std::memcpy(at_, &v, sizeof v);
    at_ += sizeof v;
  }
  // LEB128: small numbers (ids, ranks, counts, lengths) take one byte.
  void put_varint(std::uint64_t v) {
    while (v >= 0x80) {
      *at_++ = static_cast<char>((v & 0x7F) | 0x80);
      v >>= 7;
    }
    *at_++ = static_cast<char>(v);
  }
  void put_signed(std::int64_t v) {  // zigzag, so -1 is small too
    put_varint((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
  }
  void put_varstr(std::string_view s) {
    put_varint(s.size());
    if (!s.empty()) std::memcpy(at_, s.data(), s.size());
    at_ += s.size();
  }
  char* at() const { return at_; }

  static constexpr std::size_t kMaxVarint = 10;

 private:
  char* at_;
};

// Appends to a string.
class Encoder {
 public:
  explicit Encoder(std::string& out) : out_(out) {}
  template <class T>
  requires std::is_trivially_copyable_v<T>
  void put(const T& v) { out_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void put_str(std::string_view s) {
    put<std::uint32_t>(static_cast<std::uint32_t>(s.size()));
    out_.append(s);
  }
  void put_varint(std::uint64_t v) {
    small([v](RawEncoder& e) { e.put_varint(v); });
  }
  void put_signed(std::int64_t v) {
    small([v](RawEncoder& e) { e.put_signed(v); });
  }
  void put_varstr(std::string_view s) {
    put_varint(s.size());
    out_.append(s);
  }

 private:
  template <class F>
  void small(F&& put) {
    char buf[RawEncoder::kMaxVarint];
    RawEncoder e(buf);
    put(e);
    out_.append(buf, static_cast<std::size_t>(e.at() - buf));
  }
  std::string& out_;
};

// Reads what Encoder wrote; throws StoreCorruptError on a short payload.
class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}
  template <class T>
  requires std::is_trivially_copyable_v<T> T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, in_.data(), sizeof v);
    in_.remove_prefix(sizeof v);
    return v;
  }
  std::string get_str() {
    std::string s;
    get_str(s);
    return s;
  }
  // Into s, reusing its buffer.
  void get_str(std::string& s) { take(get<std::uint32_t>(), s); }
  std::uint64_t get_varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const auto b = static_cast<std::uint8_t>(get<char>());
      v |= std::uint64_t{b & 0x7Fu} << shift;
      if ((b & 0x80) == 0) return v;
    }
    throw_corrupt("varint longer than 10 bytes");
  }
  std::int64_t get_signed() {
    const std::uint64_t v = get_varint();
    return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
  }
  void get_varstr(std::string& s) { take(get_varint(), s); }
  // The next n bytes, in place.
  std::string_view get_view(std::uint64_t n) {
    need(n);
    const std::string_view v = in_.substr(0, n);
    in_.remove_prefix(n);
    return v;
  }
  bool done() const { return in_.empty(); }
  // n, a count of items that take at least min_bytes each, when what is
  // left can hold them: a damaged count is an error, never an allocation.
  std::uint64_t fits(std::uint64_t n, std::size_t min_bytes) const {
    if (n > in_.size() / min_bytes) throw_corrupt("frame payload is shorter than its counts");
    return n;
  }

 private:
  // Inline: it guards every field a flush decodes; the throw is out of line.
  void need(std::uint64_t n) const {
    if (n > in_.size()) [[unlikely]]
      throw_corrupt("frame payload is shorter than its fields");
  }
  void take(std::uint64_t n, std::string& s) {
    need(n);
    s.assign(in_.data(), n);
    in_.remove_prefix(n);
  }
  [[noreturn]] static void throw_corrupt(const char* what);
  std::string_view in_;
};

// Each encode_* appends one payload (type byte first) to out.
void encode_job(std::string& out, std::uint32_t id, const JobInfo& job);
// job_ids[i] is the log's id of records[i]'s job. offsets, when given,
// gets where each record's encoding starts in out.
void encode_records(std::string& out, std::span<const Record> records,
                    std::span<const std::uint32_t> job_ids,
                    std::vector<std::size_t>* offsets = nullptr);
// The same records frame for a columnar batch (already checked: columns of
// equal length and of the job's types), all of one job.
void encode_records(std::string& out, const RecordBatch& batch, std::uint32_t job_id,
                    std::vector<std::size_t>* offsets = nullptr);
// One record's encoding (inside a records frame, or in a memtable's arena),
// in the current log format.
void put_record(std::string& out, const Record& r, std::uint32_t job_id);
// Reads one record of the given log format (its job left empty); returns
// its job id.
std::uint32_t get_record(Decoder& d, Record& r, std::uint64_t format = kLogFormat);
// The same record appended to columns typed for its job (RowColumns::reset):
// what get_record and RowColumns::add do, without the Record.
std::uint32_t get_record_row(Decoder& d, RowColumns& row, std::uint64_t format = kLogFormat);
void encode_run(std::string& out, const RunInfo& run);
void encode_tasks(std::string& out, std::int64_t run, std::span<const TaskKey> keys);

// The decode_* functions take a payload without its type byte.
JobInfo decode_job(Decoder& d, std::uint32_t& id);
// Calls emit(job id, record) for each record; the record's job is left empty.
void decode_records(Decoder& d, std::uint64_t format,
                    const std::function<void(std::uint32_t, Record&&)>& emit);
RunInfo decode_run(Decoder& d);
std::int64_t decode_tasks(Decoder& d, std::vector<TaskKey>& keys);

}  // namespace mpibatch::detail
