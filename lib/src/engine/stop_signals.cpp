#include "engine/stop_signals.hpp"

#include <atomic>
#include <csignal>

#include "mpibatch/run.hpp"

namespace mpibatch::detail {

namespace {

volatile std::sig_atomic_t g_count = 0;
std::atomic<bool> g_interrupted{false};
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGUSR1};
struct sigaction g_saved[3];

void on_signal(int) {
  g_count = g_count + 1;
}

}  // namespace

StopSignals::StopSignals() {
  g_count = 0;
  g_interrupted = false;
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &sa, &g_saved[i]);
}

StopSignals::~StopSignals() {
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &g_saved[i], nullptr);
}

int StopSignals::count() const {
  return g_count;
}

void note_interrupted() {
  g_interrupted = true;
}
bool tasks_interrupted() {
  return g_interrupted;
}

}  // namespace mpibatch::detail

bool mpibatch::stop_signalled() {
  return detail::g_count > 0;
}
