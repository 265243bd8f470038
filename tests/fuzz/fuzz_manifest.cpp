// libFuzzer target: the MANIFEST reader (read_manifest). The input is read
// as it is and, when it names itself a MANIFEST, again with a checksum line
// the target computes (the fuzzer cannot forge XXH3), so that mutations
// reach the parser behind the checksum. Whatever reads as a MANIFEST must
// be written back (write_manifest) and read again to the same lists.
#include <xxhash.h>

#include <cstdio>

#include "fuzz_support.hpp"
#include "store/manifest.hpp"

namespace {

using namespace mpibatch;
using detail::Manifest;

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// The stamps write_manifest writes, by the names it writes them under.
bool same(const Manifest& a, const Manifest& b) {
  if (a.base != b.base || a.base_file != b.base_file || a.segments != b.segments ||
      a.logs != b.logs || a.views != b.views)
    return false;
  auto stamp = [](const Manifest& m, const std::string& name) {
    const auto it = m.stamps.find(name);
    return it == m.stamps.end() ? detail::FileStamp{1, -1, "none"} : it->second;
  };
  if (!(stamp(a, a.base_file) == stamp(b, b.base_file))) return false;
  for (const auto seq : a.segments) {
    const std::string name = detail::seq_name(seq, ".h5");
    if (!(stamp(a, name) == stamp(b, name))) return false;
  }
  return true;
}

void read_and_rewrite(const std::string& text) {
  const auto file = fuzz::work_dir() / "MANIFEST";
  fuzz::write_file(file, text);
  std::optional<Manifest> m;
  try {
    m = detail::read_manifest(file);
  } catch (const Error&) {
    return;
  }
  if (!m || !m->stamps.contains(m->base_file)) return;  // older formats: nothing to write back
  for (const auto seq : m->segments)
    if (!m->stamps.contains(detail::seq_name(seq, ".h5"))) return;
  const auto again = fuzz::work_dir() / "MANIFEST.again";
  detail::write_manifest(again, *m);
  const std::optional<Manifest> m2 = detail::read_manifest(again);
  if (!m2 || !same(*m, *m2)) {
    std::fprintf(stderr, "a MANIFEST read, written and read again differs:\n%s\n", text.c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  read_and_rewrite(text);
  if (!text.starts_with("mpibatch-manifest ")) return 0;
  if (const auto at = text.rfind("\nchecksum "); at != std::string::npos) text.resize(at);
  if (!text.ends_with('\n')) text += '\n';
  text += "checksum " + hex64(XXH3_64bits(text.data(), text.size())) + "\n";
  read_and_rewrite(text);
  return 0;
}
