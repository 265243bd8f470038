#include "engine/stop_signals.hpp"

#include <csignal>

namespace mpibatch::detail {

namespace {

volatile std::sig_atomic_t g_count = 0;
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGUSR1};
struct sigaction g_saved[3];

void on_signal(int) {
  g_count = g_count + 1;
}

}  // namespace

StopSignals::StopSignals(bool master) {
  g_count = 0;
  struct sigaction sa = {};
  sa.sa_handler = master ? on_signal : SIG_IGN;
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &sa, &g_saved[i]);
}

StopSignals::~StopSignals() {
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &g_saved[i], nullptr);
}

int StopSignals::count() const {
  return g_count;
}

}  // namespace mpibatch::detail
