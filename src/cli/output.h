// Writing results to stdout or files; a closed pipe ends quietly.
#pragma once

#include <string>

namespace spyglass::cli {

// Writes all of `text` to stdout. Returns false when the reader has gone (EPIPE).
bool write_stdout(const std::string& text);
// Writes `text` to `path` atomically enough (temp file + rename); throws Error(kIo).
void write_file(const std::string& path, const std::string& text);

}  // namespace spyglass::cli
