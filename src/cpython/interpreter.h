// Finding the CPython runtime inside a target process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cpython/layout.h"
#include "process/maps.h"

namespace spyglass::process {
class MemoryReader;
}

namespace spyglass::cpython {

struct RuntimeLocation {
  std::string binary;         // the mapped file holding the interpreter (python or libpython)
  uint64_t runtime_addr = 0;  // address of _PyRuntime in the target
  std::string how;            // "symbol _PyRuntime", ".PyRuntime section", "memory scan"
  Layout layout;
  // Type objects, for validating what the walker reads (0 when the symbol is missing).
  uint64_t code_type = 0, unicode_type = 0, bytes_type = 0;
  // 3.12: the address of _Py_next_func_version, which numbers new code objects (0 when the
  // symbol table does not have it: a stripped binary).
  uint64_t code_counter = 0;
};

// Locates the interpreter: the mapped files (not /proc/PID/exe) that define _PyRuntime, its
// version (Py_Version, the debug offsets, version strings, the file name), and the layout.
// Falls back to scanning writable memory when no symbol is found. Throws Error with one
// clear message: kNotPython, kUnsupported (naming the version), kPermission, kNoSuchProcess.
RuntimeLocation locate_runtime(pid_t pid, process::MemoryReader& memory,
                               const std::vector<process::Mapping>& maps);

}  // namespace spyglass::cpython
