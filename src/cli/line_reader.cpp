#include "cli/line_reader.h"

#include <editline/readline.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "cli/signals.h"
#include "common/text.h"

namespace spyglass::cli {
namespace {

// libedit's callbacks are plain C functions: they reach the reader running now through these.
LineReader::Completer* g_completer = nullptr;
const LineReader::LineHandler* g_handler = nullptr;
bool g_stop = false;
bool g_end_of_input = false;
const std::string* g_prompt_text = nullptr;

void on_line(char* raw) {
  if (!raw) {
    g_end_of_input = true;
    return;
  }
  std::string line(raw);
  std::free(raw);
  if (!split_words(line).empty()) add_history(line.c_str());
  if (g_handler && !(*g_handler)(line)) g_stop = true;
  // libedit leaves its character-at-a-time mode before calling us; without this the next
  // prompt would only be drawn once the next line had been typed.
  if (!g_stop && g_prompt_text) rl_callback_handler_install(g_prompt_text->c_str(), on_line);
}

char** complete(const char* text, int start, int) {
  rl_attempted_completion_over = 1;
  if (!g_completer) return nullptr;
  static std::vector<std::string> matches;
  matches = (*g_completer)(text, start == 0);
  static size_t next;
  next = 0;
  return rl_completion_matches(text, [](const char*, int) -> char* {
    return next < matches.size() ? strdup(matches[next++].c_str()) : nullptr;
  });
}

}  // namespace

LineReader::LineReader(std::string prompt, bool interactive, Completer completer)
    : prompt_(std::move(prompt)), interactive_(interactive), completer_(std::move(completer)) {
  if (!interactive_) return;
  if (const char* home = std::getenv("HOME")) {
    history_file_ = std::string(home) + "/.spyglass_history";
    read_history(history_file_.c_str());
  }
  rl_attempted_completion_function = complete;
}

LineReader::~LineReader() {
  if (!interactive_) return;
  if (!history_file_.empty()) write_history(history_file_.c_str());
}

void LineReader::install() {
  g_prompt_text = &prompt_;
  rl_callback_handler_install(prompt_.c_str(), on_line);
}

void LineReader::suspend() {
  if (interactive_) rl_callback_handler_remove();
}

void LineReader::resume() {
  if (interactive_) install();
}

bool LineReader::read_plain_lines(const LineHandler& handler, bool& stop) {
  char buf[4096];
  ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) {
    if (!pending_.empty() && !handler(std::exchange(pending_, ""))) stop = true;
    return false;
  }
  pending_.append(buf, static_cast<size_t>(n));
  for (size_t nl; !stop && (nl = pending_.find('\n')) != std::string::npos;) {
    std::string line = pending_.substr(0, nl);
    pending_.erase(0, nl + 1);
    if (!handler(line)) stop = true;
  }
  return true;
}

LineReader::End LineReader::run(const LineHandler& handler, int wake_fd) {
  g_completer = &completer_;
  g_handler = &handler;
  g_stop = false;
  g_end_of_input = false;
  if (interactive_) install();
  End end = End::kHandler;
  while (true) {
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int n = ::poll(fds, wake_fd >= 0 ? 2 : 1, -1);
    if (stop_requested()) {
      clear_stop_request();
      end = End::kInterrupted;
      break;
    }
    if (n < 0) continue;
    if (wake_fd >= 0 && (fds[1].revents & POLLIN)) {
      end = End::kWoken;
      break;
    }
    if (fds[0].revents & (POLLIN | POLLHUP)) {
      bool stop = false;
      if (interactive_) {
        rl_callback_read_char();
        stop = g_stop;
        if (g_end_of_input) {
          end = End::kEndOfInput;
          break;
        }
      } else if (!read_plain_lines(handler, stop)) {
        end = stop ? End::kHandler : End::kEndOfInput;
        break;
      }
      if (stop) {
        end = End::kHandler;
        break;
      }
    }
  }
  if (interactive_) rl_callback_handler_remove();
  g_completer = nullptr;
  g_handler = nullptr;
  g_prompt_text = nullptr;
  return end;
}

}  // namespace spyglass::cli
