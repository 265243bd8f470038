// exec's process: a command spawned with posix_spawn (default signals, an
// empty mask, no descriptor of ours), its output's tails kept and, when
// asked, its full output written to files that are never symlinks.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "exec_template.hpp"
#include "mpibatch/command_line.hpp"

namespace mpibatch::jobs {

constexpr std::size_t kTail = 4096;  // bytes of stdout and stderr kept

struct Outcome {
  int exit_code = -1;  // -1 when a signal ended it
  int signal = 0;
  bool timed_out = false;
  std::string out, err;  // the last kTail bytes
  // stdout's last line that is not blank (at most kMaxLine bytes; longer
  // ones are cut to their first kMaxLine), for --json-result.
  std::string last_line;
};

constexpr std::size_t kMaxLine = 1 << 20;

// Where full output goes (--output-dir), opened on first use (rank 0 makes
// it after the workers bound their function) and then kept: files are
// opened relative to it. Thread-safe.
class OutputDir {
 public:
  explicit OutputDir(std::string path) : path_(std::move(path)) {}
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;
  const std::string& path() const { return path_; }
  // Throws std::runtime_error naming the folder.
  int fd();

 private:
  std::string path_;
  std::mutex mutex_;
  int fd_ = -1;
};

// What to do with a command's full output: nothing, or DIR/NAME.out and .err.
struct OutputSpec {
  std::shared_ptr<OutputDir> dir;               // null: no files
  std::shared_ptr<const CommandTemplate> name;  // null: the command's xxh64
};

// A task's file name without --output-name: the xxh64 of its identity
// (its command, and its workdir and env when given), in hex.
std::string hash_name(const std::string& identity);

// --output-name: a task's file name from its placeholder values, each '/'
// in it made '_'. Throws std::runtime_error for "", "." or "..", or a name
// over 250 bytes.
std::string output_name(const CommandTemplate& name, const std::vector<Value>& values);

// A command's output files, replaced if they exist (a rerun's), opened
// relative to the folder: never through a symlink, never a file that is
// not a regular one (a FIFO would block) or has other names (a hard link).
// identity names the task for the default name (its command, and its
// workdir and env when given). Throws std::runtime_error naming the file.
class OutputFiles {
 public:
  OutputFiles(const OutputSpec& spec, const Params& p, const std::string& identity);
  ~OutputFiles();
  OutputFiles(const OutputFiles&) = delete;
  OutputFiles& operator=(const OutputFiles&) = delete;
  void write(int stream, const char* data, std::size_t n);  // 0 stdout, 1 stderr

 private:
  std::FILE* f_[2] = {nullptr, nullptr};
};

// How a command starts besides its words: a working folder ("" ours) and
// NAME=VALUE settings over our environment.
struct Launch {
  std::string workdir;
  std::vector<std::string> env;
};

// Runs command (through /bin/sh -c when shell) and waits for it. timeout
// (seconds, 0: none): then SIGTERM, and SIGKILL 2 s later. Throws
// std::runtime_error when it cannot start (naming the program).
Outcome run_command(const std::string& command, bool shell, const Launch& launch,
                    OutputFiles& files, double timeout);

}  // namespace mpibatch::jobs
