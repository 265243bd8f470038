#include "engine/crash_records.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
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
  std::atomic<long> tid{0};  // the thread that runs the tasks (crash_record_this_thread)
  std::uint64_t hi = 0, lo = 0;
  volatile std::sig_atomic_t running = 0;
  struct sigaction saved[kNumFatal] = {};
};
Armed g_armed;
bool g_in_use = false;
alignas(16) char g_alt_stack[64 * 1024];  // so a stack overflow is recorded too

long this_tid() {
  return ::syscall(SYS_gettid);
}

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
  const int saved_errno = errno;
  // Raised by this process (a fault, abort(), raise()), not sent from outside;
  // on the thread running the task, not in a child forked by it.
  // A machine-check memory error (SIGBUS) is the hardware's, not the task's.
  const bool hardware = info != nullptr && sig == SIGBUS &&
                        (info->si_code == BUS_MCEERR_AR || info->si_code == BUS_MCEERR_AO);
  const bool own =
      !hardware && (info == nullptr || info->si_code > 0 || info->si_pid == g_armed.pid);
  if (g_armed.running != 0 && own && g_armed.fd >= 0 && ::getpid() == g_armed.pid &&
      this_tid() == g_armed.tid.load(std::memory_order_relaxed)) {
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
  errno = saved_errno;
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

bool parse_line(const std::string& text, TaskKey& key, int& sig) {
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

// The run of a record's name ("run<R>-rank<N>"), or -1 for another name.
long long record_run(const char* name) {
  long long run = 0;
  int rank = 0, end = 0;
  if (std::strncmp(name, "run", 3) != 0 || name[3] < '0' || name[3] > '9' ||
      std::sscanf(name, "run%lld-rank%d%n", &run, &rank, &end) != 2 || name[end] != '\0' ||
      run < 0 || rank < 0)
    return -1;
  return run;
}

// Calls f(name, key, signal, parsed, empty) for each record of each file
// (once with parsed false for a file with no record but some bytes), files
// in the order of their runs.
template <class F>
void for_each_record(int folder, const std::string& shown, F f) {
  const int listing = ::openat(folder, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* d = listing < 0 ? nullptr : ::fdopendir(listing);
  if (d == nullptr) {
    if (listing >= 0) ::close(listing);
    throw_errno("opendir", shown);
  }
  std::vector<std::pair<long long, std::string>> names;
  while (const dirent* e = ::readdir(d))
    if (const long long run = record_run(e->d_name); run >= 0) names.emplace_back(run, e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& entry : names) {
    const std::string& name = entry.second;
    Fd fd(::openat(folder, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd) continue;  // removed meanwhile, or not a file
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    char buf[4096];  // a rank crashes once: a record is one line
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    const std::string text(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    bool any = false;
    for (std::size_t at = 0; at < text.size();) {
      const std::size_t end = std::min(text.find('\n', at), text.size() - 1) + 1;
      TaskKey key;
      int sig = 0;
      if (parse_line(text.substr(at, end - at), key, sig)) {
        f(name, key, sig, true, false);
        any = true;
      }
      at = end;
    }
    if (!any) f(name, TaskKey{}, 0, false, n == 0);
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

std::string crashed_by_signal(int signal) {
  std::string text = kCrashedPrefix + ("signal " + std::to_string(signal));
  if (const char* abbrev = ::sigabbrev_np(signal)) text += std::string(" (SIG") + abbrev + ")";
  return text;
}

std::string crash_message(const Crashes& c) {
  return crashed_by_signal(c.signal) + ", in " + std::to_string(c.count) + " runs";
}

std::string crash_folder(const std::filesystem::path& store) {
  try {
    const Fd folder = open_folder(store, false);
    struct stat st {};
    if (!folder || ::fstat(folder.get(), &st) != 0) return {};
    return std::to_string(st.st_dev) + " " + std::to_string(st.st_ino) + " " +
           (std::filesystem::absolute(Store::sidecar(store)) / kFolder).string();
  } catch (const std::exception&) {
    return {};
  }
}

CrashRecorder::CrashRecorder(const std::string& folder_id, std::int64_t run, int rank) {
  if (g_in_use) {
    error_ = "a crash recorder is armed already";
    return;
  }
  name_ = "run" + std::to_string(run) + "-rank" + std::to_string(rank);
  unsigned long long dev = 0, ino = 0;
  int at = 0;
  if (std::sscanf(folder_id.c_str(), "%llu %llu %n", &dev, &ino, &at) != 2) {
    error_ = "rank 0 could not open the folder of crash records";
    return;
  }
  const std::string path = folder_id.substr(static_cast<std::size_t>(at));
  try {
    Fd folder(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!folder) throw_errno("open", path);
    struct stat st {};
    if (::fstat(folder.get(), &st) != 0) throw_errno("stat", path);
    if (st.st_dev != dev || st.st_ino != ino)
      throw IoError(path + " is another folder here than on rank 0 (a file system not shared)");
    Fd fd(::openat(folder.get(), name_.c_str(),
                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_APPEND | O_CLOEXEC, 0644));
    if (!fd) throw_errno("create", path + "/" + name_);
    g_armed.fd = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0);
    folder_ = ::fcntl(folder.get(), F_DUPFD_CLOEXEC, 0);
  } catch (const Error& e) {
    error_ = e.what();
    return;
  }
  g_in_use = true;
  g_armed.pid = ::getpid();
  g_armed.running = 0;
  crash_record_this_thread();
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

void crash_record_this_thread() {
  if (g_armed.fd < 0 || this_tid() == g_armed.tid.load()) return;
  g_armed.tid = this_tid();
  stack_t old = {};  // one the thread has already (a sanitizer's) stays
  if (::sigaltstack(nullptr, &old) == 0 && (old.ss_flags & SS_DISABLE) != 0) {
    stack_t ss = {};
    ss.ss_sp = g_alt_stack;
    ss.ss_size = sizeof g_alt_stack;
    ::sigaltstack(&ss, nullptr);
  }
}

bool crash_recording() {
  return g_armed.fd >= 0 && this_tid() == g_armed.tid.load(std::memory_order_relaxed);
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
