#include "store/manifest.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <memory>
#include <sstream>
#include <vector>

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

namespace {

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

constexpr std::string_view kChecksum = "checksum ";

bool read_stamp(std::istream& in, FileStamp& s) {
  return static_cast<bool>(in >> s.size >> s.mtime_ns >> s.digest);
}

std::string stamp_text(const FileStamp& s) {
  return " " + std::to_string(s.size) + " " + std::to_string(s.mtime_ns) + " " + s.digest + "\n";
}

}  // namespace

FileStamp stamp_file(const fs::path& file) {
  Fd fd = open_or_throw(file.string(), O_RDONLY | O_NOFOLLOW);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw_errno("fstat", file.string());
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  XXH3_128bits_reset(state.get());
  std::vector<char> buf(std::size_t{1} << 20);
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read", file.string());
    if (n == 0) break;
    XXH3_128bits_update(state.get(), buf.data(), static_cast<std::size_t>(n));
  }
  const XXH128_hash_t h = XXH3_128bits_digest(state.get());
  return FileStamp{static_cast<std::uint64_t>(st.st_size),
                   std::int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec,
                   hex64(h.high64) + hex64(h.low64)};
}

std::string check_stamp(const fs::path& file, const FileStamp& stamp, bool full) {
  struct stat st {};
  if (::lstat(file.c_str(), &st) != 0) return {};  // missing: the caller says so
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size != stamp.size)
    return "its size is " + std::to_string(size) + " bytes, the MANIFEST recorded " +
           std::to_string(stamp.size) + ": damaged or replaced";
  const std::int64_t mtime = std::int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  if (!full && mtime == stamp.mtime_ns) return {};
  if (stamp_file(file).digest != stamp.digest)
    return "its bytes differ from the digest the MANIFEST recorded: damaged";
  return {};
}

std::optional<Manifest> read_manifest(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::nullopt;
  std::string text = read_file(file);
  constexpr std::string_view kMagic = "mpibatch-manifest ";
  std::int64_t stated = 0;
  if (text.starts_with(kMagic))
    std::from_chars(text.data() + kMagic.size(), text.data() + text.size(), stated);
  if (stated >= 6 && stated <= kStoreFormat) {  // format 6 on ends with its checksum
    const auto at = text.rfind("\nchecksum ");
    if (at == std::string::npos)
      throw StoreCorruptError(file.string() + ": the MANIFEST's checksum is missing");
    const std::string_view sum = std::string_view(text).substr(at + 1 + kChecksum.size());
    if (sum != hex64(XXH3_64bits(text.data(), at + 1)) + "\n")
      throw StoreCorruptError(file.string() +
                              ": the MANIFEST fails its checksum (a line lost or changed)");
    text.resize(at + 1);
  }
  std::istringstream in(text);
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
    if (word == "view" && version >= 6) {
      if (!read_stamp(in, m.views.emplace_back()))
        throw StoreCorruptError(file.string() + ": view without its size and digest");
      continue;
    }
    if (!(in >> seq))  // never read past a damaged line: it may list a segment
      throw StoreCorruptError(file.string() + ": entry '" + word + "' without its number");
    auto table_stamp = [&](const std::string& name) {
      FileStamp s;
      if (version >= 6 && !read_stamp(in, s))
        throw StoreCorruptError(file.string() + ": " + name + " without its size and digest");
      if (version >= 6) m.stamps[name] = s;
    };
    if (word == "base") {
      m.base = seq;
      if (version >= 2 && !(in >> m.base_file))
        throw StoreCorruptError(file.string() + ": base without its file");
      if (m.base_file.find('/') != std::string::npos || !m.base_file.starts_with("base-"))
        if (version >= 2) throw StoreCorruptError(file.string() + ": bad base file name");
      table_stamp(m.base_file);
    } else if (word == "segment") {
      m.segments.push_back(seq);
      table_stamp(seq_name(seq, ".h5"));
    } else if (word == "log" && version >= 6) {
      if (!(in >> m.logs[seq]))
        throw StoreCorruptError(file.string() + ": log " + std::to_string(seq) +
                                " without its length");
    } else
      throw StoreCorruptError(file.string() + ": unknown entry '" + word + "'");
  }
  std::sort(m.segments.begin(), m.segments.end());
  return m;
}

void write_manifest(const fs::path& file, const Manifest& m) {
  auto stamp = [&](const std::string& name) {
    const auto it = m.stamps.find(name);
    if (it == m.stamps.end()) throw StoreError("internal error: no stamp of " + name);
    return stamp_text(it->second);
  };
  std::string text = "mpibatch-manifest " + std::to_string(kStoreFormat) + "\nbase " +
                     std::to_string(m.base) + " " + m.base_file + stamp(m.base_file);
  for (auto seq : m.segments)
    text += "segment " + std::to_string(seq) + stamp(seq_name(seq, ".h5"));
  for (const auto& [seq, length] : m.logs)
    text += "log " + std::to_string(seq) + " " + std::to_string(length) + "\n";
  for (const FileStamp& v : m.views) text += "view" + stamp_text(v);
  text += std::string(kChecksum) + hex64(XXH3_64bits(text.data(), text.size())) + "\n";
  const fs::path tmp = file.string() + ".tmp";
  {
    Fd fd = open_or_throw(tmp.string(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW);
    write_all(fd.get(), text, tmp.string());
  }
  atomic_replace(tmp, file);
}

}  // namespace mpibatch::detail
