// A request left in a running CPython to run one script of ours at its next safe point: a
// moment the interpreter itself chose for running Python code (an eval-breaker check, with the
// GIL held), never an arbitrary instruction. Two ways, by version (docs/exact.md, "Starting
// exact mode in a running program"):
//   3.14+     PEP 768: every thread state carries a script path and a pending flag a debugger
//             may fill in;
//   3.8-3.13  the interpreter's own pending-call queue (what Py_AddPendingCall fills): a call
//             of PyRun_SimpleString on one line that runs the script, the line written into
//             spare bytes of a writable segment (the tail of its last page, which no symbol
//             covers).
// Every thread of the target is stopped (ptrace) while the request is written or withdrawn, so
// nothing the target does can interleave with our writes; a queue whose lock a thread holds at
// that moment is left alone and tried again.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace spyglass::process {
class MemoryReader;
}
namespace spyglass::cpython {
struct Layout;
}

namespace spyglass::cli {

struct Arming {
  size_t armed = 0;      // requests left (thread states asked, or the queue's one entry)
  size_t withdrawn = 0;  // requests not taken, withdrawn
  size_t taken = 0;      // requests a thread took (ran, or is running, the script)
};

class SafePointRequest {
 public:
  virtual ~SafePointRequest() = default;
  // Asks the target to run the script at `script_path`. Throws Error when it cannot.
  virtual void arm(const std::string& script_path) = 0;
  // Withdraws the requests no thread has taken yet.
  virtual Arming disarm() = 0;
  // Once the script has answered: frees what the request still holds in the target.
  virtual void answered() {}
  virtual size_t armed() const = 0;
  // Why no thread took it within `seconds`, and what to do: one line.
  virtual std::string not_taken(int pid, double seconds) const = 0;
  // How the request reaches the target, for messages ("through PEP 768").
  virtual const char* how() const = 0;
};

// The request for process `pid`, whose interpreter's layout is `layout`, its _PyRuntime at
// `runtime`, in the mapped file `binary` (python or libpython). Throws Error with one line when
// the version has neither way, the interpreter exports no PyRun_SimpleString, or (3.14+) the
// program turned remote debugging off.
std::unique_ptr<SafePointRequest> make_safe_point_request(int pid, const cpython::Layout& layout,
                                                          uint64_t runtime,
                                                          const std::string& binary,
                                                          process::MemoryReader& memory);

// Writes to the target's memory (process_vm_writev, then /proc/PID/mem for read-only pages).
bool write_memory(pid_t pid, uint64_t addr, const void* data, size_t size);

}  // namespace spyglass::cli
