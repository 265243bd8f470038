#include "engine/crash_records.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "mpibatch/store.hpp"
#include "store/file_util.hpp"

namespace mpibatch::detail {

namespace {

constexpr int kFatal[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
constexpr std::size_t kNumFatal = sizeof kFatal / sizeof kFatal[0];
constexpr char kFolder[] = "crashes";

// What the handler reads: plain data, set before it is installed.
struct Armed {
  int fd = -1;
  pid_t pid = 0;
  std::uint64_t hi = 0, lo = 0;
  volatile std::sig_atomic_t running = 0;
  struct sigaction saved[kNumFatal] = {};
};
Armed g_armed;
bool g_in_use = false;
alignas(16) char g_alt_stack[64 * 1024];  // so a stack overflow is recorded too

char* put_hex(char* p, std::uint64_t v) {
  for (int shift = 60; shift >= 0; shift -= 4) *p++ = "0123456789abcdef"[(v >> shift) & 0xF];
  return p;
}

char* put_decimal(char* p, int v) {
  char digits[12];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0 && n < 11);
  while (n > 0) *p++ = digits[--n];
  return p;
}

void on_fatal(int sig, siginfo_t* info, void*) {
  // Raised by this process (a fault, abort(), raise()), not sent from outside.
  const bool own = info == nullptr || info->si_code > 0 || info->si_pid == g_armed.pid;
  if (g_armed.running != 0 && own && g_armed.fd >= 0) {
    g_armed.running = 0;
    char line[64] = "crash ";
    char* p = put_hex(put_hex(line + 6, g_armed.hi), g_armed.lo);
    *p++ = ' ';
    p = put_decimal(p, sig);
    *p++ = '\n';
    const ssize_t written = ::write(g_armed.fd, line, static_cast<std::size_t>(p - line));
    if (written > 0) ::fsync(g_armed.fd);
  }
  for (std::size_t i = 0; i < kNumFatal; ++i)
    if (kFatal[i] == sig) ::sigaction(sig, &g_armed.saved[i], nullptr);
  // A fault repeats when the handler returns, now to the handler before;
  // a signal the process sent itself must be sent again.
  if (info == nullptr || info->si_code <= 0) ::raise(sig);
}

// STORE.d/crashes, opened without following links; created when create.
Fd open_folder(const std::filesystem::path& store, bool create) {
  const std::string sidecar = Store::sidecar(store).string();
  Fd dir(::open(sidecar.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) {
    if (errno == ENOENT && !create) return Fd();
    throw_errno("open", sidecar);
  }
  const std::string shown = sidecar + "/" + kFolder;
  if (create && ::mkdirat(dir.get(), kFolder, 0755) != 0 && errno != EEXIST)
    throw_errno("mkdir", shown);
  Fd folder(::openat(dir.get(), kFolder, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!folder) {
    if (errno == ENOENT && !create) return Fd();
    throw_errno("open", shown);
  }
  return folder;
}

bool parse_record(const std::string& text, TaskKey& key, int& sig) {
  // "crash <32 hex digits> <signal>\n"
  if (text.size() < 6 + 32 + 3 || text.compare(0, 6, "crash ") != 0 || text.back() != '\n')
    return false;
  try {
    key = TaskKey::from_hex(std::string_view(text).substr(6, 32));
  } catch (const Error&) {
    return false;
  }
  if (text[38] != ' ') return false;
  sig = 0;
  for (std::size_t i = 39; i + 1 < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9' || sig > 1000) return false;
    sig = sig * 10 + (text[i] - '0');
  }
  return sig > 0 && text.size() > 40;
}

bool is_record_name(const char* name) {
  long long run = 0;
  int rank = 0, end = 0;
  return std::sscanf(name, "run%lld-rank%d%n", &run, &rank, &end) == 2 && name[end] == '\0';
}

// Calls f(name, key, signal, parsed, empty) for each record file.
template <class F>
void for_each_record(int folder, const std::string& shown, F f) {
  DIR* d = ::fdopendir(::dup(folder));
  if (d == nullptr) throw_errno("opendir", shown);
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d))
    if (is_record_name(e->d_name)) names.emplace_back(e->d_name);
  ::closedir(d);
  for (const std::string& name : names) {
    Fd fd(::openat(folder, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd) continue;  // removed meanwhile, or not a file
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    char buf[128];
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    const std::string text(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    TaskKey key;
    int sig = 0;
    const bool parsed = parse_record(text, key, sig);
    f(name, key, sig, parsed, n == 0);
  }
}

}  // namespace

CrashCounts take_crash_records(const std::filesystem::path& store) {
  const Fd folder = open_folder(store, true);
  const std::string shown = Store::sidecar(store).string() + "/" + kFolder;
  CrashCounts counts;
  for_each_record(
      folder.get(), shown,
      [&](const std::string& name, const TaskKey& key, int sig, bool parsed, bool empty) {
        if (empty) {
          ::unlinkat(folder.get(), name.c_str(), 0);
        } else if (!parsed) {
          std::fprintf(stderr, "mpibatch: warning: %s/%s is not a crash record; ignored\n",
                       shown.c_str(), name.c_str());
        } else {
          Crashes& c = counts[key];
          ++c.count;
          c.signal = sig;
        }
      });
  return counts;
}

CrashCounts read_crash_records(const std::filesystem::path& store) {
  CrashCounts counts;
  try {
    const Fd folder = open_folder(store, false);
    if (!folder) return counts;
    for_each_record(folder.get(), "",
                    [&](const std::string&, const TaskKey& key, int sig, bool parsed, bool) {
                      if (!parsed) return;
                      Crashes& c = counts[key];
                      ++c.count;
                      c.signal = sig;
                    });
  } catch (const IoError&) {  // the store's own verbs report what is wrong with it
  }
  return counts;
}

void forget_crash_records(const std::filesystem::path& store,
                          const std::unordered_set<TaskKey, TaskKeyHash>& keys) {
  if (keys.empty()) return;
  const Fd folder = open_folder(store, false);
  if (!folder) return;
  const std::string shown = Store::sidecar(store).string() + "/" + kFolder;
  for_each_record(
      folder.get(), shown,
      [&](const std::string& name, const TaskKey& key, int, bool parsed, bool) {
        if (parsed && keys.count(key) > 0 && ::unlinkat(folder.get(), name.c_str(), 0) != 0)
          throw_errno("unlink", shown + "/" + name);
      });
}

std::string crash_message(const Crashes& c) {
  std::string name = "signal " + std::to_string(c.signal);
  if (const char* abbrev = ::sigabbrev_np(c.signal)) name += std::string(" (SIG") + abbrev + ")";
  return "crashed its worker: " + name + ", in " + std::to_string(c.count) + " runs";
}

CrashRecorder::CrashRecorder(const std::filesystem::path& store, std::int64_t run, int rank) {
  if (g_in_use) {
    error_ = "a crash recorder is armed already";
    return;
  }
  name_ = "run" + std::to_string(run) + "-rank" + std::to_string(rank);
  try {
    Fd folder = open_folder(store, false);
    if (!folder) throw IoError("no folder " + Store::sidecar(store).string());
    Fd fd(::openat(folder.get(), name_.c_str(),
                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_APPEND | O_CLOEXEC, 0644));
    if (!fd) throw_errno("create", Store::sidecar(store).string() + "/" + kFolder + "/" + name_);
    g_armed.fd = ::dup(fd.get());
    folder_ = ::dup(folder.get());
  } catch (const Error& e) {
    error_ = e.what();
    return;
  }
  g_in_use = true;
  g_armed.pid = ::getpid();
  g_armed.running = 0;
  stack_t ss = {};
  ss.ss_sp = g_alt_stack;
  ss.ss_size = sizeof g_alt_stack;
  ::sigaltstack(&ss, nullptr);
  struct sigaction sa = {};
  sa.sa_sigaction = on_fatal;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (std::size_t i = 0; i < kNumFatal; ++i) ::sigaction(kFatal[i], &sa, &g_armed.saved[i]);
}

CrashRecorder::~CrashRecorder() {
  if (!error_.empty()) return;
  for (std::size_t i = 0; i < kNumFatal; ++i) ::sigaction(kFatal[i], &g_armed.saved[i], nullptr);
  ::close(g_armed.fd);
  g_armed.fd = -1;
  g_in_use = false;
  if (finished_) ::unlinkat(folder_, name_.c_str(), 0);
  ::close(folder_);
}

bool crash_recording() {
  return g_armed.fd >= 0;
}

void crash_task_begin(const TaskKey& key) {
  g_armed.hi = key.hi;
  g_armed.lo = key.lo;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  g_armed.running = 1;
}

void crash_task_end() {
  g_armed.running = 0;
}

}  // namespace mpibatch::detail
