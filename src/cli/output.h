// Writing results to stdout or files; a closed pipe ends quietly.
#pragma once

#include <cstddef>
#include <string>

namespace spyglass::cli {

// Writes all of `text` to stdout. Returns false when the reader has gone (EPIPE).
bool write_stdout(const std::string& text);
// The width of the terminal on stdout, for tables to fit: $COLUMNS when set, else the
// terminal's; 0 when stdout is no terminal (a pipe or a file takes any width).
size_t terminal_width();
// Writes `text` to `path` atomically enough (temp file + rename); throws Error(kIo).
void write_file(const std::string& path, const std::string& text);

}  // namespace spyglass::cli
