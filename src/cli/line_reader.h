// The prompts' input: on a terminal, libedit (line editing, history in ~/.spyglass_history, tab
// completion) through its callback interface, so that the loop also wakes for events (the target
// exiting) while a line is half typed; without a terminal, whole lines from stdin.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace spyglass::cli {

class LineReader {
 public:
  // Completions of `text`: the first word of the line, or a later one.
  using Completer = std::function<std::vector<std::string>(const std::string& text, bool first)>;
  // Called with each line; returns false to end the loop.
  using LineHandler = std::function<bool(const std::string& line)>;

  enum class End { kHandler, kEndOfInput, kInterrupted, kWoken };

  LineReader(std::string prompt, bool interactive, Completer completer);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  bool interactive() const { return interactive_; }
  // Reads lines until the handler says stop, the input ends, Ctrl-C/SIGTERM, or `wake_fd`
  // (when >= 0) becomes readable.
  End run(const LineHandler& handler, int wake_fd);
  // Leaves line editing for a while (a full-screen view reading keys itself) and comes back.
  void suspend();
  void resume();

 private:
  void install();
  bool read_plain_lines(const LineHandler& handler, bool& stop);

  std::string prompt_;
  bool interactive_;
  Completer completer_;
  std::string history_file_;
  std::string pending_;  // plain input: the part of a line read so far
};

}  // namespace spyglass::cli
