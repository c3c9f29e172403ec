// Errors that end a command with one clear line for the user.
#pragma once

#include <stdexcept>
#include <string>

namespace spyglass {

// What went wrong, so the CLI can choose the exit code and tests can check the cause.
enum class ErrorKind {
  kUsage = 2,          // bad command line or input
  kNoSuchProcess = 3,  // PID does not exist, or exited
  kPermission = 4,     // may not read the process
  kNotPython = 5,      // no CPython interpreter found in the process
  kUnsupported = 6,    // a CPython version spyglass does not know
  kCorrupt = 7,        // memory did not check out
  kIo = 8,             // files, sockets
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }
  int exit_code() const { return static_cast<int>(kind_); }

 private:
  ErrorKind kind_;
};

}  // namespace spyglass
