// The sidecar's MANIFEST and the names of its numbered files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mpibatch::detail {

// "%012lld" of seq, then ext: a log's or segment's file name.
std::string seq_name(std::int64_t seq, const char* ext);
// Number of a sidecar file named by seq_name, or -1.
std::int64_t parse_seq(const std::string& name, std::string_view ext);

// The sidecar's MANIFEST: the base's sequence and the live segments. It is
// replaced atomically and is the commit point of a flush: a segment it does
// not list is an orphan of a crash (its logs still exist).
struct Manifest {
  std::int64_t base = 0;
  // Format 2: the base table's file in the sidecar. Empty in format 1,
  // where the base is the store's own file (now the view).
  std::string base_file;
  std::vector<std::int64_t> segments;
};

// The MANIFEST at file, or nullopt when there is none. Throws StoreCorruptError
// for one that cannot be read, StoreVersionError for a newer version.
std::optional<Manifest> read_manifest(const std::filesystem::path& file);
// Replaces file atomically with m, in this build's format.
void write_manifest(const std::filesystem::path& file, const Manifest& m);

}  // namespace mpibatch::detail
