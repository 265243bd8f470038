// libFuzzer target: a store whose table file holds the input's bytes. HDF5
// itself may crash on a damaged file, and cannot be fixed here; the store's
// defence is the stamp each table has in the MANIFEST, checked before HDF5
// opens the file. This target shows that defence holds: whatever the bytes,
// a reader either finds the table as it was written or refuses it with the
// stamp's message (so HDF5 never saw it). Bit 0 of byte 0 picks the damage:
// 0, the rest of the input is the whole file (a new mtime: a default
// reader checks the digest); 1, the rest are (u16 offset, byte) pairs XORed
// into the file, whose size and mtime are then kept, as bit rot would, and
// the reader checks every digest (check_digests, what verify does).
#include <sys/stat.h>

#include <cstring>

#include "fuzz_support.hpp"
#include "store/manifest.hpp"

namespace {

using namespace mpibatch;

struct Table {
  fuzz::fs::path store, file;
  std::string bytes;
  detail::FileStamp stamp;
};

const Table& table() {
  static const Table t = [] {
    Table x;
    x.store = fuzz::work_dir() / "seg.h5";
    fuzz::make_store(x.store);
    const auto m = detail::read_manifest(Store::sidecar(x.store) / "MANIFEST");
    x.file = Store::sidecar(x.store) / m->base_file;
    x.bytes = fuzz::read_bytes(x.file);
    x.stamp = m->stamps.at(m->base_file);
    return x;
  }();
  return t;
}

void set_mtime(const fuzz::fs::path& file, std::int64_t ns) {
  const timespec times[2] = {{ns / 1000000000, ns % 1000000000},
                             {ns / 1000000000, ns % 1000000000}};
  if (::utimensat(AT_FDCWD, file.c_str(), times, 0) != 0) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  table();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const Table& t = table();
  std::string bytes;
  const bool rot = data[0] & 1;
  if (!rot) {
    bytes.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
  } else {
    bytes = t.bytes;
    for (std::size_t i = 1; i + 3 <= size; i += 3) {
      std::uint16_t at = 0;
      std::memcpy(&at, data + i, 2);
      bytes[at % bytes.size()] ^= static_cast<char>(data[i + 2]);
    }
  }
  fuzz::write_file(t.file, bytes);
  if (rot) set_mtime(t.file, t.stamp.mtime_ns);
  StoreOptions reader;
  reader.read_only = true;
  reader.check_digests = rot;
  bool refused = false;
  try {
    const Store s = Store::open(t.store, reader);
    for (const Problem& p : s.problems()) {
      if (p.file != t.file.string()) continue;
      if (p.what.find("the MANIFEST recorded") == std::string::npos) {
        std::fprintf(stderr, "a damaged table reached HDF5: %s\n", p.what.c_str());
        std::abort();
      }
      refused = true;
    }
    fuzz::read_all(s);
  } catch (const Error&) {
  }
  if (refused == (bytes == t.bytes)) {
    std::fprintf(stderr, refused ? "a sound table was refused\n" : "a damaged table was read\n");
    std::abort();
  }
  return 0;
}
