#include "exec_template.hpp"

#include <regex>

#include "mpibatch/error.hpp"

namespace mpibatch::jobs {

std::vector<std::string> split_words(std::string_view line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quote) {
      if (c == quote)
        quote = 0;
      else if (c == '\\' && quote == '"' && i + 1 < line.size())
        word += line[++i];
      else
        word += c;
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == '\\' && i + 1 < line.size()) {
      word += line[++i];
      in_word = true;
    } else if (c == ' ' || c == '\t') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (quote) throw UsageError("unterminated quote in command: " + std::string(line));
  if (in_word) words.push_back(std::move(word));
  return words;
}

std::string quote_word(std::string_view word) {
  static constexpr std::string_view kPlain =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%";
  if (!word.empty() && word.find_first_not_of(kPlain) == std::string_view::npos)
    return std::string(word);
  std::string out = "'";
  for (char c : word) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

namespace {

// GNU Parallel's replacement strings: {.} no extension, {/} the base name,
// {//} the folder, {/.} the base name without extension.
std::string transformed(const std::string& v, std::string_view how) {
  if (how.empty()) return v;
  const auto slash = v.rfind('/');
  if (how == "//") return slash == std::string::npos ? "." : slash == 0 ? "/" : v.substr(0, slash);
  std::string out = how.starts_with("/") && slash != std::string::npos ? v.substr(slash + 1) : v;
  if (how.ends_with(".")) {
    const auto base = how.starts_with("/") ? 0 : (slash == std::string::npos ? 0 : slash + 1);
    const auto dot = out.rfind('.');
    if (dot != std::string::npos && dot > base) out.erase(dot);
  }
  return out;
}

}  // namespace

CommandTemplate::CommandTemplate(const std::string& text, Mode mode, bool constant_ok)
    : mode_(mode) {
  static const std::regex kPlaceholder(
      R"(\{(#|(?:[A-Za-z_][A-Za-z0-9_]*|[1-9])?(//|/\.|/|\.)?)\})");
  const std::vector<std::string> words =
      mode == Mode::words ? split_words(text) : std::vector<std::string>{text};
  for (const std::string& w : words) {
    std::vector<Piece>& pieces = words_.emplace_back();
    std::size_t at = 0;
    for (std::sregex_iterator it(w.begin(), w.end(), kPlaceholder), end; it != end; ++it) {
      const auto start = static_cast<std::size_t>(it->position());
      if (start > at) pieces.push_back({w.substr(at, start - at), -1});
      const std::string how = (*it)[2].str();
      std::string name = (*it)[1].str();
      name.resize(name.size() - how.size());
      at = start + static_cast<std::size_t>(it->length());
      if (name == "#") {
        pieces.push_back({"", kNumber});
        continue;
      }
      if (name.empty()) name = "1";  // {} is {1}, a one-column input's value
      int index = 0;
      while (index < static_cast<int>(names_.size()) &&
             names_[static_cast<std::size_t>(index)] != name)
        ++index;
      if (index == static_cast<int>(names_.size())) names_.push_back(name);
      pieces.push_back({how, index});
    }
    if (at < w.size() || pieces.empty()) pieces.push_back({w.substr(at), -1});
  }
  if (names_.empty() && !constant_ok)
    throw UsageError("--cmd '" + text + "' has no {placeholder}: every task would be the same");
}

std::string CommandTemplate::fill(const std::vector<Value>& values, std::uint64_t number) const {
  std::string out;
  std::string word;
  for (const auto& pieces : words_) {
    word.clear();
    for (const Piece& p : pieces) {
      if (p.name == kNumber) {
        word += std::to_string(number);
        continue;
      }
      if (p.name < 0) {
        word += p.text;
        continue;
      }
      const std::string v =
          transformed(std::get<std::string>(values.at(static_cast<std::size_t>(p.name))), p.text);
      word += mode_ == Mode::shell ? quote_word(v) : v;
    }
    if (!out.empty()) out += ' ';
    out += mode_ == Mode::words ? quote_word(word) : word;
  }
  return out;
}

}  // namespace mpibatch::jobs
