// Folders the store opened once are reached through /proc/self/fd/N (see
// detail::Dir); messages name them as the user does. Thread-safe.
#pragma once

#include <string>

namespace mpibatch::detail {

// While registered, "/proc/self/fd/<fd>" in a message reads as shown.
void register_anchor(int fd, const std::string& shown);
void unregister_anchor(int fd);
// text with every registered anchor replaced by its folder's name.
std::string shown_paths(std::string text);

}  // namespace mpibatch::detail
