#include "cli/safe_point.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/uio.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <vector>

#include "common/error.h"
#include "cpython/layout.h"
#include "process/elf.h"
#include "process/maps.h"
#include "process/memory.h"
#include "sampling/thread_pauser.h"

namespace spyglass::cli {
namespace {

constexpr size_t kMaxThreads = 4096;
constexpr size_t kMaxInterpreters = 256;
constexpr uint64_t kPage = 4096;

template <typename T>
T read_or_throw(process::MemoryReader& memory, uint64_t addr, const char* what) {
  T value{};
  if (!memory.read(addr, &value, sizeof(value))) {
    throw Error(ErrorKind::kCorrupt, fmt::format("cannot read {} at {:#x}", what, addr));
  }
  return value;
}

void write_or_throw(pid_t pid, uint64_t addr, const void* data, size_t size) {
  if (!write_memory(pid, addr, data, size)) {
    throw Error(ErrorKind::kPermission,
                fmt::format("cannot write to process {}'s memory: {}", pid, std::strerror(errno)));
  }
}

// The main interpreter: the last of the runtime's list (new interpreters are pushed at its head).
uint64_t main_interpreter(process::MemoryReader& memory, const cpython::Layout& L,
                          uint64_t runtime) {
  uint64_t interp = read_or_throw<uint64_t>(memory, runtime + L.runtime.interpreters_head,
                                            "the interpreter list");
  if (interp == 0) throw Error(ErrorKind::kNotPython, "the interpreter is not running");
  std::set<uint64_t> seen;
  for (size_t i = 0; i < kMaxInterpreters; ++i) {
    if (interp % 8 != 0 || !seen.insert(interp).second) {
      throw Error(ErrorKind::kCorrupt, "the interpreter list does not check out");
    }
    uint64_t next = read_or_throw<uint64_t>(memory, interp + L.interp.next, "an interpreter");
    if (next == 0) return interp;
    interp = next;
  }
  throw Error(ErrorKind::kCorrupt, "the interpreter list is longer than 256");
}

// The interpreter's thread states, each checked to name `interp` as its interpreter.
std::vector<uint64_t> thread_states(process::MemoryReader& memory, const cpython::Layout& L,
                                    uint64_t interp) {
  std::vector<uint64_t> out;
  std::set<uint64_t> seen;
  uint64_t t = read_or_throw<uint64_t>(memory, interp + L.interp.threads_head, "thread list");
  while (t != 0) {
    if (out.size() >= kMaxThreads || t % 8 != 0 || !seen.insert(t).second ||
        read_or_throw<uint64_t>(memory, t + L.thread.interp, "a thread state") != interp) {
      throw Error(ErrorKind::kCorrupt, "the thread list does not check out");
    }
    out.push_back(t);
    t = read_or_throw<uint64_t>(memory, t + L.thread.next, "a thread state");
  }
  return out;
}

// The offsets of PEP 768's fields came from the target: they must lie inside the thread state.
void check_debugger_layout(const cpython::Layout& L) {
  const auto& d = L.debugger;
  const uint64_t size = L.thread.size;
  bool ok = d.script_path_size >= 64 && d.script_path_size <= 4096 && d.please_stop_bit != 0 &&
            d.please_stop_bit < 256 && d.eval_breaker + 8 <= size && d.support < size &&
            d.pending_call + 4 <= size - d.support && d.script_path <= size - d.support &&
            d.script_path_size <= size - d.support - d.script_path;
  if (!ok) {
    throw Error(ErrorKind::kCorrupt,
                "the remote debugger fields of the debug offsets do not check out; the process "
                "memory may be corrupt");
  }
}

// Where the file `path` is mapped from its start (its load base before the first segment's
// vaddr), 0 when it is not.
uint64_t mapped_at(const std::vector<process::Mapping>& maps, const std::string& path) {
  for (const auto& m : maps) {
    if (m.path == path && m.offset == 0) return m.start;
  }
  return 0;
}

// ---- 3.14+: PEP 768 ------------------------------------------------------------------------
// All threads are asked (the first to reach a safe point runs the script; a claim file makes
// it run once): a main thread waiting in join() or blocked in C does not stop a worker thread
// from answering.
class Pep768Request : public SafePointRequest {
 public:
  Pep768Request(int pid, const cpython::Layout& layout, uint64_t runtime,
                process::MemoryReader& memory)
      : pid_(pid), L_(layout), runtime_(runtime), memory_(memory) {
    check_debugger_layout(L_);
    // The program's opt-out (PYTHON_DISABLE_REMOTE_DEBUG, -X disable-remote-debug).
    const uint64_t interp = main_interpreter(memory_, L_, runtime_);
    if (L_.interp.size != 0 && L_.debugger.remote_debug + 4 > L_.interp.size) {
      throw Error(ErrorKind::kCorrupt, "the remote debugging flag lies outside the interpreter");
    }
    const int32_t enabled =
        read_or_throw<int32_t>(memory_, interp + L_.debugger.remote_debug, "the remote debug flag");
    if (enabled != 1) {
      throw Error(ErrorKind::kPermission,
                  fmt::format("process {} has remote debugging turned off "
                              "(PYTHON_DISABLE_REMOTE_DEBUG or -X disable-remote-debug): exact "
                              "mode cannot be started in it from outside; in the program call "
                              "spyglass.listen() instead",
                              pid));
    }
  }

  void arm(const std::string& path) override {
    if (path.size() + 1 > L_.debugger.script_path_size) {
      throw Error(ErrorKind::kUsage,
                  fmt::format("the script path {} is longer than CPython takes ({} bytes): set "
                              "SPYGLASS_SOCKET_DIR to a shorter folder",
                              path, L_.debugger.script_path_size - 1));
    }
    sampling::ThreadPauser pauser(pid_);
    pauser.pause();
    const uint64_t interp = main_interpreter(memory_, L_, runtime_);
    for (uint64_t t : thread_states(memory_, L_, interp)) {
      const uint64_t support = t + L_.debugger.support;
      std::vector<char> bytes(path.begin(), path.end());
      bytes.push_back('\0');
      const int32_t one = 1;
      const uint64_t breaker =
          read_or_throw<uint64_t>(memory_, t + L_.debugger.eval_breaker, "an eval breaker");
      const uint8_t low = static_cast<uint8_t>(breaker | L_.debugger.please_stop_bit);
      // The low byte only: the rest of the word (the instrumentation version) is not ours.
      write_or_throw(pid_, support + L_.debugger.script_path, bytes.data(), bytes.size());
      write_or_throw(pid_, support + L_.debugger.pending_call, &one, sizeof(one));
      write_or_throw(pid_, t + L_.debugger.eval_breaker, &low, 1);
      armed_.insert(t);
    }
    pauser.resume();
  }

  Arming disarm() override {
    Arming out;
    out.armed = armed_.size();
    if (armed_.empty()) return out;
    sampling::ThreadPauser pauser(pid_);
    pauser.pause();
    for (uint64_t t : thread_states(memory_, L_, main_interpreter(memory_, L_, runtime_))) {
      if (!armed_.count(t)) continue;  // a thread state born since: never asked
      const uint64_t support = t + L_.debugger.support;
      int32_t pending = read_or_throw<int32_t>(memory_, support + L_.debugger.pending_call,
                                               "a pending call flag");
      if (pending == 1) {
        const int32_t zero = 0;
        const char nul = '\0';
        write_memory(pid_, support + L_.debugger.pending_call, &zero, sizeof(zero));
        write_memory(pid_, support + L_.debugger.script_path, &nul, 1);
        ++out.withdrawn;
      } else {
        ++out.taken;
      }
    }
    pauser.resume();
    armed_.clear();
    return out;
  }

  size_t armed() const override { return armed_.size(); }

  std::string not_taken(int pid, double seconds) const override {
    const size_t n = armed_.size();
    return fmt::format(
        "process {} did not reach a safe point within {:g} s: {} ran Python code "
        "(the main thread blocked in a C call?); nothing was left pending in it, "
        "retry when it runs Python code",
        pid, seconds,
        n == 1 ? std::string("its only thread never") : fmt::format("none of its {} threads", n));
  }

  const char* how() const override { return "PEP 768"; }

 private:
  int pid_;
  const cpython::Layout& L_;
  uint64_t runtime_;
  process::MemoryReader& memory_;
  std::set<uint64_t> armed_;
};

// ---- 3.8-3.13: the pending-call queue ----------------------------------------------------
// One entry {PyRun_SimpleString, LINE} queued as Py_AddPendingCall would (under the queue's
// lock, which no thread holds while all are stopped and it reads free), then the flags that
// make the eval loop look at the queue. LINE runs the script in a namespace of its own and
// swallows every exception: a pending call that fails would raise SystemError in whatever code
// the program was running. It lives in the spare tail of the last page of a writable segment
// (libpython's or the executable's first, then any other mapped file's): mapped, zero, and no
// symbol's. Withdrawn, the entry is taken off the queue's tail, or, behind a later entry, left
// to run an empty line (its bytes zeroed); the line's bytes are zeroed once the script has
// answered, never while a thread may still be compiling it.
class PendingCallRequest : public SafePointRequest {
 public:
  PendingCallRequest(int pid, const cpython::Layout& layout, uint64_t runtime,
                     const std::string& binary, process::MemoryReader& memory)
      : pid_(pid), L_(layout), runtime_(runtime), binary_(binary), memory_(memory) {
    const auto& p = L_.pending;
    if (p.capacity < 2 || p.capacity > 4096 || p.call_size < 16 || p.call_size > 64) {
      throw Error(ErrorKind::kCorrupt, "the pending-call queue's layout does not check out");
    }
    run_string_ = find_run_string();
  }

  void arm(const std::string& path) override {
    const std::string line = fmt::format(
        "try:__import__('builtins').exec(__import__('builtins').open({}).read(),"
        "{{'__name__':'__spyglass_inject__'}})\nexcept BaseException:pass\n",
        nlohmann::json(path).dump());
    const auto& p = L_.pending;
    sampling::ThreadPauser pauser(pid_);
    Queue q = lock_free_queue(pauser, true);
    const uint64_t slot = q.addr + p.calls + static_cast<uint64_t>(q.last) * p.call_size;
    if (read_or_throw<uint64_t>(memory_, slot, "the queue") != 0 && p.mutex) {
      pauser.resume();  // 3.13 clears a slot when it takes its call
      throw Error(ErrorKind::kCorrupt, "the pending-call queue does not check out");
    }
    line_addr_ = spare_bytes(line.size() + 1);
    std::vector<char> bytes(line.begin(), line.end());
    bytes.push_back('\0');
    write_or_throw(pid_, line_addr_, bytes.data(), bytes.size());
    line_size_ = bytes.size();
    std::vector<uint8_t> entry(p.call_size, 0);
    std::memcpy(entry.data(), &run_string_, 8);
    std::memcpy(entry.data() + 8, &line_addr_, 8);
    write_or_throw(pid_, slot, entry.data(), entry.size());
    const int32_t next = static_cast<int32_t>((q.last + 1) % p.capacity);
    write_or_throw(pid_, q.addr + p.last, &next, sizeof(next));
    const int32_t one = 1;
    if (p.mutex) {
      const int32_t count = q.npending + 1;
      write_or_throw(pid_, q.addr + p.npending, &count, sizeof(count));
      // Every thread's eval breaker: the first to look runs the queue.
      for (uint64_t t : thread_states(memory_, L_, q.interp)) {
        const uint64_t breaker =
            read_or_throw<uint64_t>(memory_, t + p.thread_eval_breaker, "an eval breaker");
        const uint8_t low = static_cast<uint8_t>(breaker | p.calls_to_do_bit);
        write_or_throw(pid_, t + p.thread_eval_breaker, &low, 1);
      }
    } else {
      write_or_throw(pid_, q.addr + p.calls_to_do, &one, sizeof(one));
      write_or_throw(pid_, q.state + p.eval_breaker, &one, sizeof(one));
    }
    slot_ = static_cast<int32_t>(q.last);
    armed_ = true;
    pauser.resume();
  }

  Arming disarm() override {
    Arming out;
    out.armed = armed_ ? 1 : 0;
    if (!armed_) return out;
    armed_ = false;
    const auto& p = L_.pending;
    sampling::ThreadPauser pauser(pid_);
    Queue q = lock_free_queue(pauser, false);
    // Still queued: between first and last.
    bool queued = false;
    const uint32_t count =
        p.mutex ? static_cast<uint32_t>(q.npending) : (q.last + p.capacity - q.first) % p.capacity;
    for (uint32_t i = q.first, n = 0; n < count; i = (i + 1) % p.capacity, ++n) {
      uint64_t entry[2] = {};
      const uint64_t slot = q.addr + p.calls + static_cast<uint64_t>(i) * p.call_size;
      if (!memory_.read(slot, entry, sizeof(entry))) break;
      if (static_cast<int32_t>(i) == slot_ && entry[0] == run_string_ && entry[1] == line_addr_) {
        queued = true;
        break;
      }
    }
    if (!queued) {
      pauser.resume();
      out.taken = 1;
      return out;
    }
    out.withdrawn = 1;
    // Our line becomes empty: left in the queue it runs nothing.
    const std::vector<char> zeros(line_size_, '\0');
    write_memory(pid_, line_addr_, zeros.data(), zeros.size());
    const uint32_t tail = (q.last + p.capacity - 1) % p.capacity;
    if (static_cast<int32_t>(tail) == slot_) {  // the last queued: taken off
      const std::vector<uint8_t> empty(p.call_size, 0);
      write_memory(pid_, q.addr + p.calls + static_cast<uint64_t>(tail) * p.call_size, empty.data(),
                   empty.size());
      const int32_t last = static_cast<int32_t>(tail);
      write_memory(pid_, q.addr + p.last, &last, sizeof(last));
      if (p.mutex) {
        const int32_t count = q.npending - 1;
        write_memory(pid_, q.addr + p.npending, &count, sizeof(count));
      } else if (q.first == tail) {
        const int32_t zero = 0;  // the queue is empty again
        write_memory(pid_, q.addr + p.calls_to_do, &zero, sizeof(zero));
      }
    }
    line_addr_ = line_size_ = 0;
    pauser.resume();
    return out;
  }

  void answered() override {
    if (line_addr_ == 0) return;
    // The script ran: PyRun_SimpleString compiled the line before running it.
    const std::vector<char> zeros(line_size_, '\0');
    write_memory(pid_, line_addr_, zeros.data(), zeros.size());
    line_addr_ = line_size_ = 0;
  }

  size_t armed() const override { return armed_ ? 1 : 0; }

  std::string not_taken(int pid, double seconds) const override {
    if (L_.pending.main_thread_only) {
      return fmt::format(
          "process {}'s main thread did not run Python code within {:g} s (before CPython 3.12 "
          "only the main thread takes the request: is it blocked in a C call, such as join(), "
          "input() or a lock?); nothing was left pending in it, retry when its main thread runs "
          "Python code, or in the program call spyglass.listen()",
          pid, seconds);
    }
    return fmt::format(
        "process {} did not reach a safe point within {:g} s: none of its threads "
        "ran Python code (all blocked in C calls?); nothing was left pending in "
        "it, retry when it runs Python code",
        pid, seconds);
  }

  const char* how() const override { return "its pending-call queue"; }

 private:
  struct Queue {
    uint64_t interp = 0;
    uint64_t state = 0;  // the runtime (3.8) or the interpreter: where the eval breaker is
    uint64_t addr = 0;
    uint32_t first = 0, last = 0;
    int32_t npending = 0;
  };

  // PyRun_SimpleString in the interpreter's file: exported for the stable ABI beside the macro.
  uint64_t find_run_string() {
    const std::vector<process::Mapping> maps = process::read_maps(pid_);
    const process::ElfFile elf(process::path_in_process_root(pid_, binary_));
    const auto sym = elf.symbol("PyRun_SimpleString");
    const uint64_t base = mapped_at(maps, binary_);
    if (!sym || base == 0) {
      throw Error(ErrorKind::kUnsupported,
                  fmt::format("process {}'s interpreter ({}) exports no PyRun_SimpleString (a "
                              "static, stripped build?): exact mode cannot be started in it from "
                              "outside; in the program call spyglass.listen() or run it with "
                              "SPYGLASS_LISTEN=1",
                              pid_, binary_));
    }
    const uint64_t addr = base - elf.first_load_vaddr() + sym->value;
    for (const auto& m : maps) {
      if (m.contains(addr) && m.executable && m.path == binary_) return addr;
    }
    throw Error(ErrorKind::kCorrupt,
                fmt::format("PyRun_SimpleString of {} is not in its code", binary_));
  }

  // `size` zero bytes after the end of a writable segment, within its last page; the file
  // holding the interpreter first. Threads are stopped: nobody writes meanwhile.
  uint64_t spare_bytes(size_t size) {
    const std::vector<process::Mapping> maps = process::read_maps(pid_);
    std::vector<std::string> files{binary_};
    for (const auto& m : maps) {
      if (m.writable && !m.path.empty() && m.path[0] == '/' && !m.deleted &&
          std::find(files.begin(), files.end(), m.path) == files.end()) {
        files.push_back(m.path);
      }
    }
    for (const auto& file : files) {
      const uint64_t base = mapped_at(maps, file);
      if (base == 0) continue;
      uint64_t end = 0;
      try {
        const process::ElfFile elf(process::path_in_process_root(pid_, file));
        if (elf.writable_end() == 0) continue;
        end = base - elf.first_load_vaddr() + elf.writable_end();
      } catch (const Error&) {
        continue;
      }
      const uint64_t from = ((end + 15) & ~uint64_t{15}) + 16;  // a gap after the last object
      const uint64_t to = (end + kPage - 1) & ~(kPage - 1);
      if (from >= to || to - from < size) continue;
      bool mapped = false;
      for (const auto& m : maps) {
        if (m.writable && m.readable && from >= m.start && to <= m.end) mapped = true;
      }
      if (!mapped) continue;
      std::vector<char> tail(to - from);
      if (!memory_.read(from, tail.data(), tail.size())) continue;
      // The first run of zeros long enough, starting after a zero (another injection's line
      // may be there).
      for (size_t at = 0; at + size <= tail.size(); at += 64) {
        if (std::all_of(tail.begin() + static_cast<long>(at),
                        tail.begin() + static_cast<long>(at + size),
                        [](char c) { return c == 0; }) &&
            (at == 0 || tail[at - 1] == 0)) {
          return from + at;
        }
      }
    }
    throw Error(ErrorKind::kUnsupported,
                fmt::format("found no spare bytes in process {} for the request's line", pid_));
  }

  // Stops every thread with the queue's lock free, and reads and checks the queue. Its lock
  // held by a thread that was stopped inside it: let go, and tried again.
  Queue lock_free_queue(sampling::ThreadPauser& pauser, bool need_room) {
    const auto& p = L_.pending;
    for (int attempt = 0; attempt < 200; ++attempt) {
      pauser.pause();
      Queue q;
      q.interp = main_interpreter(memory_, L_, runtime_);
      q.state = p.in_runtime ? runtime_ : q.interp;
      q.addr = q.state + p.queue;
      bool locked = false;
      if (p.mutex) {
        locked = (read_or_throw<uint8_t>(memory_, q.addr + p.lock, "the queue's lock") & 1) != 0;
      } else {
        // A PyThread_type_lock is a POSIX semaphore (glibc: its value in the low 32 bits of
        // its first word): 1 free, 0 held.
        const uint64_t lock = read_or_throw<uint64_t>(memory_, q.addr + p.lock, "the queue's lock");
        if (lock == 0 || lock % 8 != 0) {
          throw Error(ErrorKind::kCorrupt, "the pending-call queue has no lock");
        }
        const uint32_t value = static_cast<uint32_t>(
            read_or_throw<uint64_t>(memory_, lock, "the queue's lock") & 0xffffffffu);
        if (value > 1) throw Error(ErrorKind::kCorrupt, "the pending-call queue's lock is odd");
        locked = value == 0;
      }
      if (!locked) {
        const int32_t first = read_or_throw<int32_t>(memory_, q.addr + p.first, "the queue");
        const int32_t last = read_or_throw<int32_t>(memory_, q.addr + p.last, "the queue");
        if (first < 0 || last < 0 || static_cast<uint64_t>(first) >= p.capacity ||
            static_cast<uint64_t>(last) >= p.capacity) {
          pauser.resume();
          throw Error(ErrorKind::kCorrupt, "the pending-call queue does not check out");
        }
        q.first = static_cast<uint32_t>(first);
        q.last = static_cast<uint32_t>(last);
        bool full = (q.last + 1) % p.capacity == q.first;
        if (p.mutex) {
          q.npending = read_or_throw<int32_t>(memory_, q.addr + p.npending, "the queue");
          const int32_t max = read_or_throw<int32_t>(memory_, q.addr + p.max, "the queue");
          if (max <= 0 || static_cast<uint64_t>(max) > p.capacity || q.npending < 0 ||
              q.npending > max) {
            pauser.resume();
            throw Error(ErrorKind::kCorrupt, "the pending-call queue does not check out");
          }
          full = q.npending >= max;
        }
        if (full && need_room) {
          pauser.resume();
          throw Error(ErrorKind::kIo,
                      fmt::format("process {}'s pending-call queue is full: retry later", pid_));
        }
        return q;
      }
      pauser.resume();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    throw Error(ErrorKind::kIo,
                fmt::format("process {}'s pending-call queue stayed locked: retry later", pid_));
  }

  int pid_;
  const cpython::Layout& L_;
  uint64_t runtime_;
  std::string binary_;
  process::MemoryReader& memory_;
  uint64_t run_string_ = 0;
  uint64_t line_addr_ = 0;
  size_t line_size_ = 0;
  int32_t slot_ = -1;
  bool armed_ = false;
};

}  // namespace

bool write_memory(pid_t pid, uint64_t addr, const void* data, size_t size) {
  iovec local{const_cast<void*>(data), size};
  iovec remote{reinterpret_cast<void*>(addr), size};
  ssize_t n = process_vm_writev(pid, &local, 1, &remote, 1, 0);
  if (n == static_cast<ssize_t>(size)) return true;
  // process_vm_writev refuses read-only pages only; /proc/PID/mem is the same permission check.
  int fd = open(fmt::format("/proc/{}/mem", pid).c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  n = pwrite(fd, data, size, static_cast<off_t>(addr));
  close(fd);
  return n == static_cast<ssize_t>(size);
}

std::unique_ptr<SafePointRequest> make_safe_point_request(int pid, const cpython::Layout& layout,
                                                          uint64_t runtime,
                                                          const std::string& binary,
                                                          process::MemoryReader& memory) {
  if (layout.debugger.support != 0) {
    return std::make_unique<Pep768Request>(pid, layout, runtime, memory);
  }
  if (layout.pending.queue != 0) {
    return std::make_unique<PendingCallRequest>(pid, layout, runtime, binary, memory);
  }
  throw Error(ErrorKind::kUnsupported,
              fmt::format("process {} (CPython {}) has no exact-mode socket, and spyglass knows "
                          "no safe way to start exact mode in it from outside: in the program "
                          "call spyglass.listen() or run it with SPYGLASS_LISTEN=1",
                          pid, layout.version.str()));
}

}  // namespace spyglass::cli
