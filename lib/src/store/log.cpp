#include "store/log.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include "mpibatch/error.hpp"
#include "store/frame_codec.hpp"

namespace mpibatch::detail {

namespace {

constexpr std::string_view kHeaderMagic = "MPIBLOG\n";
constexpr std::size_t kHeaderSize = 16;
constexpr std::uint32_t kFrameMagic = 0x4D46424Du;  // "MBFM"
constexpr std::size_t kFrameHeader = 16;
constexpr std::size_t kDrainBytes = std::size_t{8} << 20;

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

LogWriter::LogWriter(std::filesystem::path path) : path_(std::move(path)) {
  fd_ = open_or_throw(path_.string(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND);
  std::string header(kHeaderMagic);
  Encoder(header).put<std::uint64_t>(kLogFormat);
  write_all(fd_.get(), header, path_.string());
  fsync_or_throw(fd_.get(), path_.string());
  fsync_dir(path_.parent_path());
  written_ = header.size();
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
  // Large batches go to the kernel early; they are not durable until commit.
  if (buffer_.size() >= kDrainBytes) drain();
}

void LogWriter::drain() {
  write_all(fd_.get(), buffer_, path_.string());
  // Start writing these pages back now (RocksDB's bytes_per_sync), so that
  // commit's fdatasync waits for the last few MiB, not a second's worth.
  // Only a hint: durability still comes from fdatasync.
  ::sync_file_range(fd_.get(), static_cast<off_t>(written_), static_cast<off_t>(buffer_.size()),
                    SYNC_FILE_RANGE_WRITE);
  written_ += buffer_.size();
  buffer_.clear();
}

void LogWriter::commit() {
  add([](std::string& out) { Encoder(out).put(FrameType::commit); });
  drain();
  if (::fdatasync(fd_.get()) != 0) throw_errno("fdatasync", path_.string());
}

LogReplay replay_log(const std::filesystem::path& path,
                     const std::function<void(std::string_view, std::uint64_t)>& apply,
                     std::vector<Problem>& problems) {
  const std::string data = read_file(path);
  const std::string name = path.string();
  if (data.size() < kHeaderSize || std::string_view(data).substr(0, 8) != kHeaderMagic) {
    // A crash right after creation can leave a short header: nothing committed.
    if (data.size() < kHeaderSize &&
        std::string_view(kHeaderMagic).starts_with(data.substr(0, 8))) {
      return LogReplay{0, data.size()};
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
  LogReplay result;
  std::vector<std::string_view> pending;
  std::size_t pos = kHeaderSize;
  std::size_t committed_end = pos;
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
      result.committed_frames += pending.size();
      pending.clear();
      committed_end = pos;
    } else {
      pending.push_back(payload);
    }
  }
  result.dropped_tail_bytes = all.size() - committed_end;
  return result;
}

}  // namespace mpibatch::detail
