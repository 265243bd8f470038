// What the verbs that read a store share: picking a run, and times.
#include <chrono>
#include <cmath>
#include <ctime>

#include "cli/verbs.hpp"

namespace mpibatch::detail {

void require_sound(const Store& s) {
  const auto& p = s.problems();
  if (p.empty()) return;
  throw StoreCorruptError(
      "store " + s.path().string() + " is damaged: " + p.front().file + ": " + p.front().what +
      (p.size() > 1 ? " (and " + std::to_string(p.size() - 1) + " more)" : std::string()) +
      "; run 'mpibatch verify'");
}

const RunInfo& pick_run(const Store& s, std::int64_t id, std::vector<RunInfo>& runs) {
  runs = s.runs();
  if (runs.empty()) require_sound(s);  // the runs may be in what is damaged
  if (runs.empty()) throw UsageError("store " + s.path().string() + " has no runs yet");
  if (id == 0) return runs.back();
  for (const auto& r : runs)
    if (r.id == id) return r;
  throw UsageError("store " + s.path().string() + " has no run " + std::to_string(id) +
                   " (it has 1 to " + std::to_string(runs.back().id) + ")");
}

CLI::Validator seconds(bool zero_ok) {
  return CLI::Validator(
      [zero_ok](std::string& text) -> std::string {
        double v = 0;
        std::size_t used = 0;
        try {
          v = std::stod(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == text.size() && std::isfinite(v) && (v > 0 || (zero_ok && v == 0))) return {};
        return "'" + text.substr(0, 40) + "' is not a number of seconds " +
               (zero_ok ? ">= 0" : "> 0");
      },
      zero_ok ? "SECONDS>=0" : "SECONDS>0");
}

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string time_text(double unix_seconds) {
  if (unix_seconds <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  return buf;
}

}  // namespace mpibatch::detail
