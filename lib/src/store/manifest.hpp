// The sidecar's MANIFEST and the names of its numbered files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mpibatch::detail {

// "%012lld" of seq, then ext: a log's or segment's file name.
std::string seq_name(std::int64_t seq, const char* ext);
// Number of a sidecar file named by seq_name, or -1.
std::int64_t parse_seq(const std::string& name, std::string_view ext);

// What the MANIFEST records of an immutable table file: a reader checks the
// digest before HDF5 reads the file (HDF5 may crash on a damaged one).
struct FileStamp {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::string digest;  // XXH3-128 of the bytes, hex
  bool operator==(const FileStamp&) const = default;
};

// The file's stamp; throws IoError. Never follows a symlink.
FileStamp stamp_file(const std::filesystem::path& file);
// Why file does not match stamp ("" when it does). With full false, a file
// of the stamp's size and mtime is taken as it is; else its digest is read.
std::string check_stamp(const std::filesystem::path& file, const FileStamp& stamp, bool full);

// The sidecar's MANIFEST: the base's sequence and the live segments. It is
// replaced atomically and is the commit point of a flush: a segment it does
// not list is an orphan of a crash (its logs still exist) or was merged into
// a listed table. From format 6 it ends with its own checksum, so a line
// lost or changed is damage, not a shorter list.
struct Manifest {
  std::int64_t base = 0;
  // Format 2: the base table's file in the sidecar. Empty in format 1,
  // where the base is the store's own file (now the view).
  std::string base_file;
  std::vector<std::int64_t> segments;
  // By file name (format 6 on): the base's and the segments' stamps.
  std::map<std::string, FileStamp> stamps;
  // Format 6 on: the logs no listed table covers, by number, each with the
  // length known committed (0 for the log being written, whose length only
  // its commit frames tell): a listed log missing or shorter lost records.
  std::map<std::int64_t, std::uint64_t> logs;
  // The view's stamps: the view in place matches one. While a writer
  // replaces the view, both the old one's and the new one's are listed, so
  // a crash between the MANIFEST and the rename leaves no false alarm.
  std::vector<FileStamp> views;
};

// The MANIFEST at file, or nullopt when there is none. Throws StoreCorruptError
// for one that cannot be read, StoreVersionError for a newer version.
std::optional<Manifest> read_manifest(const std::filesystem::path& file);
// Replaces file atomically with m, in this build's format.
void write_manifest(const std::filesystem::path& file, const Manifest& m);

}  // namespace mpibatch::detail
