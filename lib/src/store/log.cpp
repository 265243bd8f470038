#include "store/log.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "mpibatch/error.hpp"
#include "store/frame_codec.hpp"

namespace mpibatch::detail {

namespace {

constexpr std::string_view kHeaderMagic = "MPIBLOG\n";
constexpr std::size_t kHeaderSize = 16;
constexpr std::uint32_t kFrameMagic = 0x4D46424Du;  // "MBFM"
constexpr std::size_t kFrameHeader = 16;
// Buffers handed to the writer thread: small enough to still be in cache
// when it copies them, and a bounded number in flight (memory stays bounded;
// the caller waits when the disk falls behind).
constexpr std::size_t kDrainBytes = std::size_t{1} << 20;
constexpr std::size_t kMaxQueued = 8;

struct FrameHeader {
  std::uint32_t magic;
  std::uint32_t length;
  std::uint64_t hash;
};
static_assert(sizeof(FrameHeader) == kFrameHeader);

// A valid frame at pos, or false.
bool frame_at(std::string_view data, std::size_t pos, FrameHeader& h) {
  if (data.size() - pos < kFrameHeader) return false;
  std::memcpy(&h, data.data() + pos, kFrameHeader);
  if (h.magic != kFrameMagic || h.length == 0) return false;
  if (h.length > data.size() - pos - kFrameHeader) return false;
  return XXH3_64bits(data.data() + pos + kFrameHeader, h.length) == h.hash;
}

}  // namespace

struct LogWriter::Writes {
  struct Job {
    std::string bytes;
    bool sync = false;
  };
  Fd fd;
  std::string path;
  std::size_t offset = 0;   // where the next write lands
  std::size_t durable = 0;  // the end of the last synced write
  std::mutex mutex;
  std::condition_variable wake_writer;
  std::condition_variable wake_caller;
  std::deque<Job> queue;
  std::vector<std::string> spare;  // written buffers, reused: no fresh pages
  std::uint64_t handed = 0;
  std::uint64_t done = 0;
  std::exception_ptr error;  // the first failure; nothing is written after it
  bool stop = false;
  std::thread thread;

  void run() {
    std::unique_lock lock(mutex);
    for (;;) {
      wake_writer.wait(lock, [this] { return stop || !queue.empty(); });
      if (queue.empty()) return;
      Job job = std::move(queue.front());
      queue.pop_front();
      const bool skip = error != nullptr;
      lock.unlock();
      std::exception_ptr failed;
      if (!skip) {
        try {
          write_all(fd.get(), job.bytes, path);
          // Start writing these pages back now (RocksDB's bytes_per_sync), so
          // that commit's fdatasync waits for the last few MiB only. A hint:
          // durability comes from fdatasync.
          ::sync_file_range(fd.get(), static_cast<off_t>(offset),
                            static_cast<off_t>(job.bytes.size()), SYNC_FILE_RANGE_WRITE);
          offset += job.bytes.size();
          if (job.sync && ::fdatasync(fd.get()) != 0) throw_errno("fdatasync", path);
          if (job.sync) durable = offset;
        } catch (...) {
          failed = std::current_exception();
          // A full disk: give back what will never be committed (best effort).
          if (::ftruncate(fd.get(), static_cast<off_t>(durable)) == 0) offset = durable;
        }
      }
      job.bytes.clear();
      lock.lock();
      if (failed && !error) error = failed;
      if (spare.size() < kMaxQueued) spare.push_back(std::move(job.bytes));
      ++done;
      wake_caller.notify_all();
    }
  }
};

LogWriter::LogWriter(std::filesystem::path path) : path_(std::move(path)) {
  auto w = std::make_unique<Writes>();
  w->path = path_.string();
  w->fd = open_or_throw(w->path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND);
  std::string header(kHeaderMagic);
  Encoder(header).put<std::uint64_t>(kLogFormat);
  write_all(w->fd.get(), header, w->path);
  fsync_or_throw(w->fd.get(), w->path);
  fsync_dir(path_.parent_path());
  handed_over_ = header.size();
  w->offset = header.size();
  w->durable = header.size();
  w->thread = std::thread([p = w.get()] { p->run(); });
  writes_ = std::move(w);
}

LogWriter::~LogWriter() {
  {
    std::lock_guard lock(writes_->mutex);
    writes_->stop = true;
  }
  writes_->wake_writer.notify_one();
  writes_->thread.join();
}

std::size_t LogWriter::begin_frame() {
  const std::size_t start = buffer_.size();
  buffer_.resize(start + kFrameHeader);
  return start;
}

void LogWriter::end_frame(std::size_t start) {
  FrameHeader h{};
  h.magic = kFrameMagic;
  const std::size_t length = buffer_.size() - start - kFrameHeader;
  if (length > 0xFFFFFFF0u) throw UsageError("a record larger than 4 GiB cannot be stored");
  h.length = static_cast<std::uint32_t>(length);
  h.hash = XXH3_64bits(buffer_.data() + start + kFrameHeader, length);
  std::memcpy(buffer_.data() + start, &h, kFrameHeader);
  // Large batches go to the writer early; they are not durable until commit.
  if (buffer_.size() >= kDrainBytes) hand_over(false);
}

std::uint64_t LogWriter::hand_over(bool sync) {
  Writes& w = *writes_;
  std::unique_lock lock(w.mutex);
  w.wake_caller.wait(lock, [&w] { return w.queue.size() < kMaxQueued || w.error; });
  if (w.error) std::rethrow_exception(w.error);
  handed_over_ += buffer_.size();
  w.queue.push_back({std::move(buffer_), sync});
  buffer_.clear();
  if (!w.spare.empty()) {
    buffer_ = std::move(w.spare.back());
    w.spare.pop_back();
  }
  const std::uint64_t n = ++w.handed;
  lock.unlock();
  w.wake_writer.notify_one();
  return n;
}

void LogWriter::commit() {
  add([](std::string& out) { Encoder(out).put(FrameType::commit); });
  const std::uint64_t n = hand_over(true);
  Writes& w = *writes_;
  std::unique_lock lock(w.mutex);
  w.wake_caller.wait(lock, [&] { return w.done >= n; });
  if (w.error) std::rethrow_exception(w.error);
}

std::uint64_t replay_log(const std::filesystem::path& path,
                         const std::function<void(std::string_view, std::uint64_t)>& apply,
                         std::vector<Problem>& problems) {
  const std::string data = read_file(path);
  const std::string name = path.string();
  if (data.size() < kHeaderSize || std::string_view(data).substr(0, 8) != kHeaderMagic) {
    // A crash right after creation can leave a short header: nothing committed.
    if (data.size() < kHeaderSize &&
        std::string_view(kHeaderMagic).starts_with(data.substr(0, 8))) {
      return 0;
    }
    throw NotAStoreError(name + ": not an mpibatch log");
  }
  std::uint64_t format = 0;
  std::memcpy(&format, data.data() + 8, sizeof format);
  if (format > kLogFormat) {
    throw StoreVersionError(name + ": log format version " + std::to_string(format) +
                            " is newer than this mpibatch reads (" + std::to_string(kLogFormat) +
                            ")");
  }

  const std::string_view all(data);
  std::vector<std::string_view> pending;
  std::size_t pos = kHeaderSize, committed = kHeaderSize;
  FrameHeader h{};
  while (pos < all.size()) {
    if (!frame_at(all, pos, h)) {
      // Damage or the torn tail? Look for any good frame further on.
      std::size_t next = pos + 1;
      while (next < all.size() && !frame_at(all, next, h)) ++next;
      if (next >= all.size()) break;  // nothing good after it: a torn tail
      problems.push_back({name, "bad checksum or frame at offset " + std::to_string(pos) + ", " +
                                    std::to_string(next - pos) + " bytes skipped"});
      pos = next;
      continue;
    }
    const std::string_view payload = all.substr(pos + kFrameHeader, h.length);
    pos += kFrameHeader + h.length;
    if (static_cast<FrameType>(payload[0]) == FrameType::commit) {
      for (auto p : pending) apply(p, format);
      pending.clear();
      committed = pos;
    } else {
      pending.push_back(payload);
    }
  }
  return committed;
}

}  // namespace mpibatch::detail
