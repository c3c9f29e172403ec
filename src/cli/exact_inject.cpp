// Starting exact mode in a running CPython 3.14+ that never imported spyglass, through PEP 768
// (the protocol sys.remote_exec speaks): each thread state carries a request a debugger may fill
// in (a script path and a pending flag) and an eval-breaker bit that makes the thread look at it
// the next time it checks for pending work, a point where running Python code is safe. The
// script (ours, written here, 0600, in the private socket folder) loads the extension matching
// the target's interpreter and opens the control socket; then `attach --exact` proceeds as for
// a program that opened it itself.
//
// Every thread of the target is stopped (ptrace, as --blocking samples) while its thread states
// are read and written: no thread can change an eval breaker between our read and our write,
// and the thread list cannot change under us. All threads are asked (the first to reach a safe
// point runs the script; a claim file makes it run once): a main thread waiting in join() or
// blocked in C does not stop a worker thread from answering. Once the script has answered, or
// the wait timed out, the requests not taken yet are withdrawn (again with the threads
// stopped), so nothing of ours runs later unexpectedly.
#include "cli/exact_inject.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "cli/signals.h"
#include "common/error.h"
#include "cpython/layout.h"
#include "cpython/target.h"
#include "process/descendants.h"
#include "process/maps.h"
#include "sampling/thread_pauser.h"

#ifndef SPYGLASS_SOURCE_DIR
#define SPYGLASS_SOURCE_DIR ""
#endif

namespace spyglass::cli {
namespace fs = std::filesystem;
namespace {

constexpr size_t kMaxThreads = 4096;
constexpr size_t kMaxInterpreters = 256;

std::string machine_triplet() {
#if defined(__x86_64__)
  return "x86_64-linux-gnu";
#elif defined(__aarch64__)
  return "aarch64-linux-gnu";
#else
  return "";
#endif
}

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

template <typename T>
T read_or_throw(process::MemoryReader& memory, uint64_t addr, const char* what) {
  T value{};
  if (!memory.read(addr, &value, sizeof(value))) {
    throw Error(ErrorKind::kCorrupt, fmt::format("cannot read {} at {:#x}", what, addr));
  }
  return value;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string random_token() {
  unsigned char bytes[8] = {};
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (read(fd, bytes, sizeof(bytes)) != static_cast<ssize_t>(sizeof(bytes))) {
      std::memset(bytes, 0, sizeof(bytes));
    }
    close(fd);
  }
  std::string out;
  for (unsigned char b : bytes) out += fmt::format("{:02x}", b);
  return out + fmt::format("{:x}", static_cast<unsigned>(getpid()));
}

// The main interpreter: the last of the runtime's list (new interpreters are pushed at its
// head). Every pointer is checked to be readable as an interpreter state.
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

bool is_package(const fs::path& folder, const std::string& tag) {
  std::error_code ec;
  const fs::path package = folder / "spyglass";
  return fs::is_regular_file(package / ("_spyglass." + tag + ".so"), ec) &&
         fs::is_regular_file(package / "__init__.py", ec) &&
         fs::is_regular_file(package / "_control.py", ec);
}

// The folders the target's environment lives in (or, with `executables`, the paths of its
// interpreter they come from, best first).
std::vector<std::string> target_prefixes(int pid, const std::string& runtime_binary,
                                         bool executables = false) {
  std::vector<std::string> exes;
  // argv[0] as the target was started (a virtual environment's bin/python is a link to the
  // base interpreter: /proc/PID/exe names the base, argv[0] the environment).
  // An interpreter run through the dynamic loader (ld.so --argv0 PATH python ...) names itself
  // with --argv0.
  const std::vector<std::string> args = process::command_arguments(pid);
  std::string argv0 = args.empty() ? std::string() : args[0];
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--argv0") argv0 = args[i + 1];
  }
  if (!argv0.empty() && argv0.find('/') != std::string::npos) {
    if (argv0[0] != '/') {
      std::error_code ec;
      fs::path cwd = fs::read_symlink(fmt::format("/proc/{}/cwd", pid), ec);
      if (!ec) argv0 = (cwd / argv0).lexically_normal().string();
    }
    if (argv0[0] == '/') exes.push_back(argv0);
  }
  // VIRTUAL_ENV of an activated environment.
  std::string environ = read_file(fmt::format("/proc/{}/environ", pid));
  for (size_t at = 0; at < environ.size();) {
    size_t end = environ.find('\0', at);
    if (end == std::string::npos) end = environ.size();
    std::string_view entry(environ.data() + at, end - at);
    if (entry.rfind("VIRTUAL_ENV=", 0) == 0 && entry.size() > 12) {
      exes.push_back(std::string(entry.substr(12)) + "/bin/python");
    }
    at = end + 1;
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink(fmt::format("/proc/{}/exe", pid), ec);
  if (!ec) exes.push_back(exe.string());
  if (!runtime_binary.empty()) exes.push_back(runtime_binary);  // libpython's lib/ folder
  if (executables) return exes;
  std::vector<std::string> prefixes;
  for (const auto& path : exes) {
    std::string prefix = fs::path(path).parent_path().parent_path().string();
    if (prefix.empty()) continue;
    if (std::find(prefixes.begin(), prefixes.end(), prefix) == prefixes.end()) {
      prefixes.push_back(prefix);
    }
  }
  return prefixes;
}

// The target's interpreter as a command: its argv[0] (or --argv0) when a path, else its exe.
std::string target_python(int pid, const cpython::PythonVersion& version) {
  std::vector<std::string> exes = target_prefixes(pid, "", true);
  if (!exes.empty()) return exes[0];
  return fmt::format("python{}.{}", version.major, version.minor);
}

std::string python_literal(const std::string& text) {
  try {
    return nlohmann::json(text).dump();  // a JSON string is a Python string literal
  } catch (const std::exception&) {
    throw Error(ErrorKind::kUsage, fmt::format("path {} is not UTF-8", text));
  }
}

// The script the target runs (a fresh namespace, no __file__). It must never raise into the
// program nor print: whatever happens is written to the result file.
std::string injected_script(const std::string& script, const std::string& claim,
                            const std::string& result, const std::string& folder,
                            const std::string& socket_path, const std::string& tag,
                            double deadline) {
  return fmt::format(
      R"(# Written by `spyglass attach --exact` (PEP 768): loads spyglass's exact mode and opens
# its control socket. Runs once (the claim), and never after its deadline.
def _spyglass_inject(script, claim, result, folder, socket_path, tag, deadline, tool):
    import os, sys, time
    def answer(text):
        fd = os.open(result + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.rename(result + ".tmp", result)
    if time.time() > deadline:
        try:
            os.unlink(script)
        except OSError:
            pass
        return
    try:
        os.close(os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        return
    try:
        module = sys.modules.get("spyglass")
        # "imported": by the program itself (an earlier injection marks the module it loads).
        own = "imported" if module is not None and not getattr(module, "_injected", False) \
            else "loaded"
        if module is None:
            sys.path.insert(0, folder)
            try:
                import spyglass as module
            finally:
                try:
                    sys.path.remove(folder)
                except ValueError:
                    pass
        if own == "loaded":
            module._injected = True
        core = getattr(module, "_core", None)
        if not getattr(core, "__file__", "").endswith("." + tag + ".so"):
            raise ImportError("spyglass's extension %r is not built for %s" %
                              (getattr(core, "__file__", None), tag))
        from spyglass import _control
        _control._private_dir(os.path.dirname(socket_path))
        try:
            os.kill(tool, 0)  # spyglass gone (killed while waiting): nobody will connect
        except ProcessLookupError:
            return
        except OSError:
            pass
        path = _control.listen(socket_path)
        server = getattr(_control, "_server", None)
        if hasattr(server, "on_disconnect"):
            server.on_disconnect = dict(command="close", keep_timing=own == "imported")
        if time.time() > deadline:  # spyglass gave up waiting: nobody will connect
            if hasattr(_control, "close"):
                _control.close()
            return
        answer("ok\n%s\n%s\n%s\n" % (path, os.path.dirname(os.path.dirname(module.__file__)),
                                    own))
    except BaseException as error:
        try:
            answer("error\n%s: %s\n" % (type(error).__name__, error))
        except BaseException:
            pass
_spyglass_inject({}, {}, {}, {}, {}, {}, {:.3f}, {})
)",
      python_literal(script), python_literal(claim), python_literal(result), python_literal(folder),
      python_literal(socket_path), python_literal(tag), deadline, static_cast<long>(getpid()));
}

void private_folder(const std::string& folder, unsigned uid) {
  if (mkdir(folder.c_str(), 0700) == 0) {
    if (geteuid() != uid && chown(folder.c_str(), uid, static_cast<gid_t>(-1)) != 0) {
      throw Error(ErrorKind::kIo,
                  fmt::format("cannot give {} to uid {}: {}", folder, uid, std::strerror(errno)));
    }
  } else if (errno != EEXIST) {
    throw Error(ErrorKind::kIo, fmt::format("cannot create {}: {}", folder, std::strerror(errno)));
  }
  struct stat st {};
  if (lstat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != uid ||
      (st.st_mode & 077) != 0) {
    throw Error(ErrorKind::kIo,
                fmt::format("{} is not a private folder of uid {} (mode 0700)", folder, uid));
  }
}

void write_private_file(const std::string& path, const std::string& text, unsigned uid) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw Error(ErrorKind::kIo, fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  }
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  if (ok && geteuid() != uid) ok = fchown(fd, uid, static_cast<gid_t>(-1)) == 0;
  close(fd);
  if (!ok) {
    unlink(path.c_str());
    throw Error(ErrorKind::kIo, fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  }
}

struct Arming {
  size_t armed = 0;      // thread states asked
  size_t withdrawn = 0;  // requests not taken, withdrawn
  size_t taken = 0;      // requests a thread took (ran, or is running, the script)
};

class Injector {
 public:
  Injector(int pid, const cpython::Layout& layout, uint64_t runtime, process::MemoryReader& memory)
      : pid_(pid), L_(layout), runtime_(runtime), memory_(memory) {}

  uint64_t interp() { return main_interpreter(memory_, L_, runtime_); }
  size_t armed() const { return armed_.size(); }

  // Asks every thread state to run `path`. The target's threads are stopped meanwhile.
  void arm(const std::string& path) {
    sampling::ThreadPauser pauser(pid_);
    pauser.pause();
    const uint64_t interp_addr = interp();
    for (uint64_t t : thread_states(memory_, L_, interp_addr)) {
      const uint64_t support = t + L_.debugger.support;
      std::vector<char> bytes(path.begin(), path.end());
      bytes.push_back('\0');
      const int32_t one = 1;
      const uint64_t breaker =
          read_or_throw<uint64_t>(memory_, t + L_.debugger.eval_breaker, "an eval breaker");
      const uint8_t low = static_cast<uint8_t>(breaker | L_.debugger.please_stop_bit);
      // The low byte only: the rest of the word (the instrumentation version) is not ours.
      if (!write_memory(pid_, support + L_.debugger.script_path, bytes.data(), bytes.size()) ||
          !write_memory(pid_, support + L_.debugger.pending_call, &one, sizeof(one)) ||
          !write_memory(pid_, t + L_.debugger.eval_breaker, &low, 1)) {
        throw Error(ErrorKind::kPermission, fmt::format("cannot write to process {}'s memory: {}",
                                                        pid_, std::strerror(errno)));
      }
      armed_.insert(t);
    }
    pauser.resume();
  }

  // Withdraws the requests no thread has taken yet (threads stopped meanwhile).
  Arming disarm() {
    Arming out;
    out.armed = armed_.size();
    if (armed_.empty()) return out;
    sampling::ThreadPauser pauser(pid_);
    pauser.pause();
    for (uint64_t t : thread_states(memory_, L_, interp())) {
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

 private:
  int pid_;
  const cpython::Layout& L_;
  uint64_t runtime_;
  process::MemoryReader& memory_;
  std::set<uint64_t> armed_;
};

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string find_extension_folder(int pid, const std::vector<std::string>& prefixes, int minor,
                                  const std::string& tag) {
  const std::string py = fmt::format("python3.{}", minor);
  std::vector<fs::path> folders;
  for (const auto& prefix : prefixes) {
    fs::path p(prefix);
    for (const auto& sub : {"lib/" + py + "/site-packages", "lib64/" + py + "/site-packages",
                            std::string("lib/python3/dist-packages"),
                            "local/lib/" + py + "/dist-packages", "lib/" + py + "/dist-packages"}) {
      folders.push_back(p / sub);
    }
  }
  const size_t env_folders = folders.size();
  // Builds for this interpreter: `make python` (build-python/py3.X-*/package, or under
  // $SPYGLASS_PYTHON_BUILD), then the per-user cache.
  std::vector<fs::path> roots;
  // $SPYGLASS_PYTHON_BUILD, when set, is where `make python` builds go (instead of the
  // checkout's build-python/), as for make_python.sh.
  if (const char* root = std::getenv("SPYGLASS_PYTHON_BUILD"); root && *root) {
    roots.push_back(root);
  } else if (*SPYGLASS_SOURCE_DIR) {
    roots.push_back(fs::path(SPYGLASS_SOURCE_DIR) / "build-python");
  }
  for (const auto& root : roots) {
    std::error_code ec;
    std::vector<fs::path> builds;
    for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().filename().string().rfind("py3." + std::to_string(minor) + "-", 0) == 0) {
        builds.push_back(it->path() / "package");
      }
    }
    std::sort(builds.begin(), builds.end());
    folders.insert(folders.end(), builds.begin(), builds.end());
  }
  const char* cache = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  if (cache && *cache) {
    folders.push_back(fs::path(cache) / "spyglass" / "python" / tag);
  } else if (home && *home) {
    folders.push_back(fs::path(home) / ".cache" / "spyglass" / "python" / tag);
  }
  // The target's own environment, as the target sees it (through /proc/PID/root: a container's
  // files); the builds, as spyglass sees them.
  for (size_t i = 0; i < folders.size(); ++i) {
    const bool targets = i < env_folders;
    const fs::path seen =
        targets ? fs::path(process::path_in_process_root(pid, folders[i].string())) : folders[i];
    if (is_package(seen, tag)) return folders[i].string();
  }
  return "";
}

struct PendingInjection::State {
  explicit State(int pid) : target(pid) {}
  cpython::Target target;
  std::unique_ptr<Injector> injector;
  Injection out;
  double started = 0;
  bool answered = false;
  bool withdrawn = false;
  size_t taken = 0;  // requests a thread took: its script may still answer, and removes itself
};

PendingInjection::PendingInjection(int pid, unsigned uid, const std::string& socket_path,
                                   double deadline_seconds)
    : pid_(pid) {
  const double started = now_seconds();
  state_ = std::make_unique<State>(pid);
  state_->started = started;
  cpython::Target& target = state_->target;
  const cpython::Layout& L = target.runtime().layout;
  const cpython::PythonVersion& version = L.version;
  if (L.debugger.support == 0) {
    throw Error(ErrorKind::kUnsupported,
                fmt::format("process {} (CPython {}) has no exact-mode socket, and starting exact "
                            "mode in a running program needs CPython 3.14+ (PEP 768): in the "
                            "program call spyglass.listen() or run it with SPYGLASS_LISTEN=1",
                            pid, version.str()));
  }
  check_debugger_layout(L);
  process::MemoryReader& memory = target.memory();
  state_->injector = std::make_unique<Injector>(pid, L, target.runtime().runtime_addr, memory);
  Injector& injector = *state_->injector;
  const uint64_t interp = injector.interp();
  if (L.interp.size != 0 && L.debugger.remote_debug + 4 > L.interp.size) {
    throw Error(ErrorKind::kCorrupt, "the remote debugging flag lies outside the interpreter");
  }
  const int32_t enabled =
      read_or_throw<int32_t>(memory, interp + L.debugger.remote_debug, "the remote debug flag");
  if (enabled != 1) {
    throw Error(ErrorKind::kPermission,
                fmt::format("process {} has remote debugging turned off "
                            "(PYTHON_DISABLE_REMOTE_DEBUG or -X disable-remote-debug): exact mode "
                            "cannot be started in it from outside; in the program call "
                            "spyglass.listen() instead",
                            pid));
  }
  const std::string tag =
      fmt::format("cpython-{}{}-{}", version.major, version.minor, machine_triplet());
  const std::string folder =
      find_extension_folder(pid, target_prefixes(pid, target.runtime().binary), version.minor, tag);
  if (folder.empty()) {
    const std::string python = target_python(pid, version);
    throw Error(ErrorKind::kUnsupported,
                fmt::format("no spyglass extension built for process {}'s CPython {} ({}): "
                            "install spyglass in its environment ({} -m pip install spyglass) "
                            "or build one: make {}python PYTHON={}",
                            pid, version.str(), tag, python,
                            *SPYGLASS_SOURCE_DIR ? fmt::format("-C {} ", SPYGLASS_SOURCE_DIR)
                                                 : std::string(),
                            python));
  }

  const std::string dir = fs::path(socket_path).parent_path().string();
  private_folder(dir, uid);
  const std::string base = fmt::format("{}/{}.inject-{}", dir, pid, random_token());
  Injection& out = state_->out;
  out.files = {base + ".py", base + ".claim", base + ".result", base + ".result.tmp"};
  const std::string& script = out.files[0];
  if (script.size() + 1 > L.debugger.script_path_size) {
    throw Error(ErrorKind::kUsage,
                fmt::format("the script path {} is longer than CPython takes ({} bytes): set "
                            "SPYGLASS_SOCKET_DIR to a shorter folder",
                            script, L.debugger.script_path_size - 1));
  }
  const double deadline = wall_seconds() + deadline_seconds;
  write_private_file(
      script,
      injected_script(script, out.files[1], out.files[2], folder, socket_path, tag, deadline), uid);
  try {
    injector.arm(script);
  } catch (...) {
    size_t taken = 0;
    try {
      taken = withdraw();
    } catch (const Error&) {
    }
    if (taken == 0) remove_injection_files(out);
    throw;
  }
}

PendingInjection::~PendingInjection() {
  if (!state_ || state_->answered) return;
  try {
    withdraw();  // nothing of ours may stay pending (a no-op once withdrawn)
  } catch (const Error&) {
  }
  // A taken request (a late answer) still needs its script: it removes it itself.
  if (state_->taken == 0 || !process::process_exists(pid_)) remove_injection_files(state_->out);
}

size_t PendingInjection::armed() const {
  return state_->injector ? state_->injector->armed() : 0;
}

size_t PendingInjection::withdraw() {
  if (!state_->withdrawn) {
    state_->withdrawn = true;
    state_->taken = state_->injector ? state_->injector->disarm().taken : 0;
  }
  return state_->taken;
}

std::optional<Injection> PendingInjection::answer() {
  const Injection& out = state_->out;
  if (out.files.size() < 3 || access(out.files[2].c_str(), F_OK) != 0) {
    if (!process::process_exists(pid_)) {
      throw Error(ErrorKind::kNoSuchProcess,
                  fmt::format("process {} exited during the injection", pid_));
    }
    return std::nullopt;
  }
  const std::string text = read_file(out.files[2]);
  state_->answered = true;
  try {
    withdraw();  // the other threads' requests: untaken, withdrawn
  } catch (const Error&) {
  }
  std::istringstream lines(text);
  std::string status, first, second, third;
  std::getline(lines, status);
  std::getline(lines, first);
  std::getline(lines, second);
  std::getline(lines, third);
  if (status != "ok") {
    remove_injection_files(out);
    throw Error(ErrorKind::kUnsupported,
                fmt::format("exact mode could not be started in process {}: {}", pid_, first));
  }
  if (first.empty() || first[0] != '/') {
    remove_injection_files(out);
    throw Error(ErrorKind::kCorrupt, fmt::format("process {} answered a bad socket path", pid_));
  }
  Injection done = out;
  done.socket_path = first;
  done.package_folder = second;
  done.program_imported_spyglass = third == "imported";
  done.seconds = now_seconds() - state_->started;
  return done;
}

Injection inject_exact_mode(int pid, unsigned uid, const std::string& socket_path,
                            double timeout_seconds) {
  PendingInjection pending(pid, uid, socket_path, timeout_seconds);
  const double until = now_seconds() + timeout_seconds;
  while (now_seconds() < until) {
    if (auto done = pending.answer()) return *done;
    if (stop_requested()) throw Error(ErrorKind::kUsage, "interrupted");
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (auto done = pending.answer()) return *done;
  const size_t armed = pending.armed();
  if (pending.withdraw() != 0) {
    throw Error(ErrorKind::kIo,
                fmt::format("process {} started exact mode's script but it did not answer within "
                            "{:g} s; it closes what it opened by itself once past its deadline",
                            pid, timeout_seconds));
  }
  throw Error(ErrorKind::kIo,
              fmt::format("process {} did not reach a safe point within {:g} s: {} ran Python "
                          "code (the main thread blocked in a C call?); nothing was left "
                          "pending in it, retry when it runs Python code",
                          pid, timeout_seconds,
                          armed == 1 ? std::string("its only thread never")
                                     : fmt::format("none of its {} threads", armed)));
}

void remove_injection_files(const Injection& injection) {
  for (const auto& file : injection.files) unlink(file.c_str());
}

}  // namespace spyglass::cli
