// exec's command templates: each value one argument, substituted once.
#include "exec_template.hpp"

#include <gtest/gtest.h>

#include "mpibatch/error.hpp"

namespace {

using mpibatch::UsageError;
using mpibatch::Value;
using mpibatch::jobs::CommandTemplate;
using mpibatch::jobs::quote_word;
using mpibatch::jobs::split_words;
using Mode = CommandTemplate::Mode;

std::vector<Value> strings(std::initializer_list<const char*> xs) {
  std::vector<Value> out;
  for (const char* x : xs) out.emplace_back(std::string(x));
  return out;
}

const char* const kHostile[] = {"b c.txt", "a' b 'c", "'",   "{b}",   "$(date).txt", "it's.txt",
                                "",        "x;y|z&",  "\\n", "\"q\"", "tab\there",   "{f}"};

TEST(ExecTemplate, QuotedWordsSplitBackToThemselves) {
  for (const char* v : kHostile) {
    const auto words = split_words("cmd " + quote_word(v) + " end");
    ASSERT_EQ(words.size(), 3u) << v;
    EXPECT_EQ(words[1], v);
  }
  EXPECT_EQ(quote_word("plain-file_1.txt"), "plain-file_1.txt");  // readable when safe
  EXPECT_EQ(quote_word("it's"), "'it'\\''s'");
}

TEST(ExecTemplate, WithoutShellEachValueIsOneArgumentInsideItsWord) {
  const CommandTemplate t("printf '[%s]' {f} --out={f}.done", Mode::words);
  ASSERT_EQ(t.names(), std::vector<std::string>{"f"});
  for (const char* v : kHostile) {
    const auto words = split_words(t.fill(strings({v})));
    ASSERT_EQ(words.size(), 4u) << v;
    EXPECT_EQ(words[0], "printf");
    EXPECT_EQ(words[1], "[%s]");
    EXPECT_EQ(words[2], v);
    EXPECT_EQ(words[3], std::string("--out=") + v + ".done");
  }
}

TEST(ExecTemplate, SubstitutedOnceInEveryMode) {
  for (Mode m : {Mode::words, Mode::shell, Mode::raw}) {
    const CommandTemplate t("echo {a} {b}", m);
    ASSERT_EQ(t.names(), (std::vector<std::string>{"a", "b"}));
    const std::string cmd = t.fill(strings({"{b}", "XYZ"}));
    EXPECT_NE(cmd.find("{b}"), std::string::npos) << cmd;  // a's value stays as given
  }
}

TEST(ExecTemplate, ShellModeQuotesValuesAndKeepsTheTemplatesShell) {
  const CommandTemplate t("cat {f} | wc -l > {f}.n", Mode::shell);
  EXPECT_EQ(t.fill(strings({"it's.txt"})), "cat 'it'\\''s.txt' | wc -l > 'it'\\''s.txt'.n");
  EXPECT_EQ(t.fill(strings({"a.txt"})), "cat a.txt | wc -l > a.txt.n");
  const CommandTemplate raw("printf [%s] {f}", Mode::raw);
  EXPECT_EQ(raw.fill(strings({"b c"})), "printf [%s] b c");
}

TEST(ExecTemplate, TaskNumberIsNotAnInput) {
  const CommandTemplate t("convert {f} out-{#}.png", Mode::words);
  EXPECT_EQ(t.names(), std::vector<std::string>{"f"});
  EXPECT_EQ(t.fill(strings({"a b.jpg"}), 7), "convert 'a b.jpg' out-7.png");
  EXPECT_THROW(CommandTemplate("echo {#}", Mode::words), UsageError);  // no input: one task
}

TEST(ExecTemplate, ParallelsReplacementStrings) {
  const CommandTemplate t("convert {} {.}.png {/} {//} {/.} {1}", Mode::words);
  EXPECT_EQ(t.names(), std::vector<std::string>{"1"});  // {} is {1}
  EXPECT_EQ(t.fill(strings({"in/a.b/x y.jpg"})),
            "convert 'in/a.b/x y.jpg' 'in/a.b/x y.png' 'x y.jpg' in/a.b 'x y' 'in/a.b/x y.jpg'");
  // A dot in a folder's name is no extension; a name without a folder has "." as its folder.
  EXPECT_EQ(t.fill(strings({"a.b/c"})), "convert a.b/c a.b/c.png c a.b c a.b/c");
  EXPECT_EQ(t.fill(strings({"c"})), "convert c c.png c . c c");
  EXPECT_EQ(t.fill(strings({"/c.d"})), "convert /c.d /c.png c.d / c /c.d");
  const CommandTemplate named("gzip -c {f} > {f/.}.gz", Mode::shell);
  EXPECT_EQ(named.names(), std::vector<std::string>{"f"});
  EXPECT_EQ(named.fill(strings({"d/it's.txt"})), "gzip -c 'd/it'\\''s.txt' > 'it'\\''s'.gz");
}

TEST(ExecTemplate, TemplateErrors) {
  EXPECT_THROW(CommandTemplate("echo hello", Mode::words), UsageError);
  EXPECT_THROW(CommandTemplate("echo 'unterminated {x}", Mode::words), UsageError);
  const CommandTemplate awk("awk '{print $1}' {f}", Mode::words);  // not a placeholder
  EXPECT_EQ(awk.names(), std::vector<std::string>{"f"});
  EXPECT_EQ(split_words(awk.fill(strings({"x"})))[1], "{print $1}");
}

}  // namespace
