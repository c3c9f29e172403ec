// What a walk of the target's stacks produces.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace spyglass::cpython {

// A code object's identity and names, cached by address (see CodeCache).
struct CodeInfo {
  uint32_t id = 0;       // unique for the walker's lifetime, never reused (unlike addresses)
  std::string name;      // co_name
  std::string qualname;  // co_qualname (3.11+), else co_name
  std::string filename;  // co_filename
  int firstlineno = 0;
  bool generator = false;  // 3.8-3.10: a generator's or coroutine's code (from co_flags)
  uint32_t framesize = 0;  // 3.11+: words a frame of this code takes on the data stack
};

struct Frame {
  uint64_t code_addr = 0;
  const CodeInfo* code = nullptr;  // owned by the walker's cache; valid until the next walk
  int line = 0;                    // current line, or firstlineno when unknown
  uint64_t frame_addr = 0;         // the frame object (3.8-3.10) or interpreter frame: its locals
};

struct ThreadStack {
  uint64_t tstate_addr = 0;
  uint64_t thread_id = 0;  // pthread_t, as threading.get_ident() shows it
  pid_t native_id = 0;     // kernel TID, 0 when unknown
  int64_t interpreter_id = 0;
  bool holds_gil = false;
  bool gil_known = false;  // false where the version does not expose the holder
  bool truncated = false;  // stopped at the depth limit or a bad frame
  // The walk kept catching a generator between yield and resume, its callers unreachable
  // (see StackWalker): the stack holds only the frames above them. Also marks it truncated.
  bool torn = false;
  // The CPU the thread runs on or last ran on, from glibc's rseq area (process/rseq.h); read
  // for the GIL holder only (the sampler keeps off its CPU), -1 when unknown.
  int cpu = -1;
  std::vector<Frame> frames;  // innermost first
};

}  // namespace spyglass::cpython
