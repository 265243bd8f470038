// exec's commands as text: shell-like word splitting without expansion, and
// --cmd templates whose {name} placeholders take each task's values. A value
// is substituted once (never read again for placeholders) and, unless the
// user asks for it raw, arrives as exactly one argument.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mpibatch/store.hpp"

namespace mpibatch::jobs {

// Spaces separate words; '...' and "..." quote; a backslash escapes the next
// character (inside "..." too); nothing is expanded. Throws UsageError for
// an unterminated quote.
std::vector<std::string> split_words(std::string_view line);

// word as /bin/sh and split_words read it back: as it is when every
// character is plain (letters, digits, _ - . / = : , + @ %), else in single
// quotes (a ' inside as '\'').
std::string quote_word(std::string_view word);

class CommandTemplate {
 public:
  enum class Mode {
    words,  // no shell: split into words first, each value inside its word
    shell,  // /bin/sh -c: each value shell-quoted where it stands
    raw     // --unquoted: values pasted into the text as they are
  };
  // Parses text's {name} placeholders (a name of letters, digits and _;
  // {#} is the task's number; {} is {1}, a one-column input's value; a
  // name followed by . / // or /. takes, as in GNU Parallel, the value
  // without extension, its base name, its folder, or the base name without
  // extension; other braces are text). Throws UsageError for an unterminated quote
  // (words mode) or a template without placeholders (unless constant_ok).
  CommandTemplate(const std::string& text, Mode mode, bool constant_ok = false);
  // The placeholders' names, in order of first appearance.
  const std::vector<std::string>& names() const { return names_; }
  // The command line for values (strings, one per name, in names() order)
  // and the task's number (for {#}): in words mode the words quoted so that
  // split_words gives them back.
  std::string fill(const std::vector<Value>& values, std::uint64_t number = 0) const;

 private:
  static constexpr int kNumber = -2;
  struct Piece {
    std::string text;  // literal text, or a placeholder's transform ("", ".", "/", "//", "/.")
    int name = -1;     // index in names_, -1 for literal text, kNumber for {#}
  };
  std::vector<std::vector<Piece>> words_;  // one "word" (the whole text) unless words mode
  std::vector<std::string> names_;
  Mode mode_;
};

}  // namespace mpibatch::jobs
