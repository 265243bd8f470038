#include "core/shown_paths.hpp"

#include <map>
#include <mutex>

#include "mpibatch/error.hpp"

namespace mpibatch {
namespace detail {
namespace {

std::mutex& anchors_mutex() {
  static std::mutex m;
  return m;
}

std::map<std::string, std::string>& anchors() {  // "/proc/self/fd/N" -> shown
  static std::map<std::string, std::string> a;
  return a;
}

std::string anchor_of(int fd) {
  return "/proc/self/fd/" + std::to_string(fd);
}

}  // namespace

void register_anchor(int fd, const std::string& shown) {
  const std::lock_guard lock(anchors_mutex());
  anchors()[anchor_of(fd)] = shown;
}

void unregister_anchor(int fd) {
  const std::lock_guard lock(anchors_mutex());
  anchors().erase(anchor_of(fd));
}

std::string shown_paths(std::string text) {
  if (text.find("/proc/self/fd/") == std::string::npos) return text;
  const std::lock_guard lock(anchors_mutex());
  for (const auto& [anchor, shown] : anchors()) {
    for (std::size_t at = text.find(anchor); at != std::string::npos;
         at = text.find(anchor, at + 1)) {
      const std::size_t end = at + anchor.size();
      if (end < text.size() && text[end] >= '0' && text[end] <= '9') continue;  // fd 1 in fd 12
      text.replace(at, anchor.size(), shown);
      at += shown.size() - 1;
    }
  }
  return text;
}

}  // namespace detail

Error::Error(const std::string& message) : std::runtime_error(detail::shown_paths(message)) {}

}  // namespace mpibatch
