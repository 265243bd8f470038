// libFuzzer target: the log reader. The input becomes a log in the sidecar
// of a real store, which a reader then opens: replay_log cuts it into
// frames, and each committed frame is decoded (frame_codec) and applied as
// Store::open does. An input that starts with the log's magic is the file
// as it is; any other is a format byte and a list of payloads, each a u16
// length and its bytes, which the target frames itself with their checksums
// and a commit frame after them, so that mutations reach the decoders.
#include <xxhash.h>

#include <cstring>

#include "fuzz_support.hpp"

namespace {

using namespace mpibatch;

const fuzz::fs::path& store_path() {
  static const fuzz::fs::path path = fuzz::work_dir() / "log.h5";
  return path;
}

void put_frame(std::string& out, std::string_view payload) {
  const std::uint32_t magic = 0x4D46424Du, length = static_cast<std::uint32_t>(payload.size());
  const std::uint64_t hash = XXH3_64bits(payload.data(), payload.size());
  out.append(reinterpret_cast<const char*>(&magic), 4);
  out.append(reinterpret_cast<const char*>(&length), 4);
  out.append(reinterpret_cast<const char*>(&hash), 8);
  out.append(payload);
}

// The framed form of a payload list (see the top of the file).
std::string framed(std::string_view in) {
  std::string out = "MPIBLOG\n";
  const std::uint64_t format = in.empty() ? 3 : 1 + static_cast<std::uint8_t>(in[0]) % 3;
  out.append(reinterpret_cast<const char*>(&format), 8);
  if (!in.empty()) in.remove_prefix(1);
  while (in.size() >= 2) {
    std::uint16_t n = 0;
    std::memcpy(&n, in.data(), 2);
    in.remove_prefix(2);
    const std::string_view payload = in.substr(0, n);
    in.remove_prefix(payload.size());
    put_frame(out, payload);
  }
  put_frame(out, std::string_view("\x05", 1));  // a commit frame
  return out;
}

}  // namespace

// An empty store: the log defines its own jobs and runs, and a reader's
// time goes to the log, not to HDF5 reading a table.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Store::open(store_path()).close();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto log = Store::sidecar(store_path()) / "000000999999.log";
  fuzz::write_file(log, in.starts_with("MPIBLOG\n") ? std::string(in) : framed(in));
  try {
    StoreOptions reader;
    reader.read_only = true;
    const Store s = Store::open(store_path(), reader);
    fuzz::read_all(s);
  } catch (const Error&) {
  }
  return 0;
}
