#include "store/manifest.hpp"

#include <fcntl.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <sstream>

#include "mpibatch/error.hpp"
#include "mpibatch/store.hpp"
#include "store/file_util.hpp"

namespace mpibatch::detail {

namespace fs = std::filesystem;

std::string seq_name(std::int64_t seq, const char* ext) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%012lld%s", static_cast<long long>(seq), ext);
  return buf;
}

std::int64_t parse_seq(const std::string& name, std::string_view ext) {
  if (name.size() != 12 + ext.size() || !name.ends_with(ext)) return -1;
  std::int64_t v = -1;
  auto [p, ec] = std::from_chars(name.data(), name.data() + 12, v);
  return ec == std::errc() && p == name.data() + 12 ? v : -1;
}

std::optional<Manifest> read_manifest(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::nullopt;
  std::istringstream in(read_file(file));
  std::string word;
  std::int64_t version = 0;
  Manifest m;
  if (!(in >> word >> version) || word != "mpibatch-manifest") {
    throw StoreCorruptError(file.string() + ": not an mpibatch manifest");
  }
  if (version > kStoreFormat) {
    throw StoreVersionError(file.string() + ": manifest format version " + std::to_string(version) +
                            " is newer than this mpibatch reads (" + std::to_string(kStoreFormat) +
                            ")");
  }
  std::int64_t seq = 0;
  while (in >> word) {
    if (!(in >> seq))  // never read past a damaged line: it may list a segment
      throw StoreCorruptError(file.string() + ": entry '" + word + "' without its number");
    if (word == "base") {
      m.base = seq;
      if (version >= 2 && !(in >> m.base_file))
        throw StoreCorruptError(file.string() + ": base without its file");
      if (m.base_file.find('/') != std::string::npos || !m.base_file.starts_with("base-"))
        if (version >= 2) throw StoreCorruptError(file.string() + ": bad base file name");
    } else if (word == "segment")
      m.segments.push_back(seq);
    else
      throw StoreCorruptError(file.string() + ": unknown entry '" + word + "'");
  }
  std::sort(m.segments.begin(), m.segments.end());
  return m;
}

void write_manifest(const fs::path& file, const Manifest& m) {
  std::string text = "mpibatch-manifest " + std::to_string(kStoreFormat) + "\nbase " +
                     std::to_string(m.base) + " " + m.base_file + "\n";
  for (auto seq : m.segments) text += "segment " + std::to_string(seq) + "\n";
  const fs::path tmp = file.string() + ".tmp";
  {
    Fd fd = open_or_throw(tmp.string(), O_WRONLY | O_CREAT | O_TRUNC);
    write_all(fd.get(), text, tmp.string());
  }
  atomic_replace(tmp, file);
}

}  // namespace mpibatch::detail
