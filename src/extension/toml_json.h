// TOML config files as JSON text, for interpreters without tomllib (before 3.11). Independent of
// the interpreter: it lives in the common library built once for all of them.
#pragma once

#include <string>

namespace spyglass::exact {

// The file's table as a JSON object (dates and times as their TOML text). Throws
// std::runtime_error with "path: message (line N)" on a syntax error or an unreadable file.
std::string toml_file_to_json(const std::string& path);

}  // namespace spyglass::exact
