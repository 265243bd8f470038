// The write-ahead log: an append-only file of checksummed frames.
//
//   file   = header frame*
//   header = "MPIBLOG\n" u64 format (kLogFormat)
//   frame  = u32 magic u32 length u64 xxh3(payload) payload[length]
//
// commit() appends a commit frame and fdatasyncs. On replay only frames
// followed by a commit frame count: a torn or uncommitted tail is dropped
// silently (that is what a crash leaves), while a bad frame followed by good
// ones is damage and is reported.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mpibatch/store.hpp"
#include "store/file_util.hpp"

namespace mpibatch::detail {

// Frames are encoded into a buffer by the caller's thread; a background
// thread writes full buffers to the file, so the kernel's copy into the page
// cache costs the appending thread nothing. Not thread-safe: one caller.
class LogWriter {
 public:
  // Creates a new log (must not exist) and makes its name durable.
  explicit LogWriter(std::filesystem::path path);
  // Waits for the writes handed over; what was never committed may be lost.
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;
  // Appends the payload encode() writes into the buffer. Throws the IoError
  // of an earlier background write.
  template <class F>
  void add(F&& encode) {
    const std::size_t start = begin_frame();
    encode(buffer_);
    end_frame(start);
  }
  // Writes everything added and a commit frame, then fdatasync; returns when
  // that is done. Throws IoError (of this or an earlier write).
  void commit();
  // Bytes in the file plus the buffer.
  std::size_t size() const { return handed_over_ + buffer_.size(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  struct Writes;  // the background writer and what it is given
  std::size_t begin_frame();
  void end_frame(std::size_t start);
  // Hands the buffer to the writer (fdatasync after it when sync); returns
  // the hand-over's number.
  std::uint64_t hand_over(bool sync);
  std::filesystem::path path_;
  std::string buffer_;
  std::size_t handed_over_ = 0;
  std::unique_ptr<Writes> writes_;
};

// Calls apply(payload, the log's format) for every committed frame in order
// (commit frames excluded). Damage goes into problems. Returns the committed
// length: the bytes up to the end of the last commit frame. Throws
// StoreVersionError for a newer format, NotAStoreError for a file that is
// not a log, IoError.
std::uint64_t replay_log(const std::filesystem::path& path,
                         const std::function<void(std::string_view, std::uint64_t)>& apply,
                         std::vector<Problem>& problems);

}  // namespace mpibatch::detail
