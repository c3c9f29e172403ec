// Starting exact mode in a running CPython that never imported spyglass: a request left in the
// target (src/cli/safe_point.h: PEP 768 on 3.14+, the pending-call queue on 3.8-3.13) makes it
// run, at its next safe point, a script of ours (written here, 0600, in the private socket
// folder) that loads the extension matching the target's interpreter and opens the control
// socket; then `attach --exact` proceeds as for a program that opened it itself. The script
// runs once (a claim file), answers in a result file, and gives up past its deadline. Once it
// has answered, or the wait timed out, the requests not taken yet are withdrawn, so nothing of
// ours runs later unexpectedly.
#include "cli/exact_inject.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cli/safe_point.h"
#include "cli/signals.h"
#include "common/error.h"
#include "cpython/layout.h"
#include "cpython/target.h"
#include "process/descendants.h"
#include "process/maps.h"

#ifndef SPYGLASS_SOURCE_DIR
#define SPYGLASS_SOURCE_DIR ""
#endif

namespace spyglass::cli {
namespace fs = std::filesystem;
namespace {

std::string machine_triplet() {
#if defined(__x86_64__)
  return "x86_64-linux-gnu";
#elif defined(__aarch64__)
  return "aarch64-linux-gnu";
#else
  return "";
#endif
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

// The per-user cache of packages for other interpreters: ${XDG_CACHE_HOME:-~/.cache}/spyglass/
// python/<tag>; empty when neither is set.
std::string user_cache_folder(const std::string& tag) {
  const char* cache = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  if (cache && *cache) return (fs::path(cache) / "spyglass" / "python" / tag).string();
  if (home && *home) return (fs::path(home) / ".cache" / "spyglass" / "python" / tag).string();
  return "";
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
                            const std::string& socket_path, const std::string& tag, double deadline,
                            int target) {
  return fmt::format(
      R"(# Written by `spyglass attach --exact`: loads spyglass's exact mode and opens
# its control socket. Runs once (the claim), never after its deadline, and only in the process
# it was meant for (a child forked meanwhile inherits the request).
def _spyglass_inject(script, claim, result, folder, socket_path, tag, deadline, tool, target):
    import os, sys, time
    if os.getpid() != target:
        return
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
_spyglass_inject({}, {}, {}, {}, {}, {}, {:.3f}, {}, {})
)",
      python_literal(script), python_literal(claim), python_literal(result), python_literal(folder),
      python_literal(socket_path), python_literal(tag), deadline, static_cast<long>(getpid()),
      target);
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
  if (const std::string cache = user_cache_folder(tag); !cache.empty()) folders.push_back(cache);
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
  std::unique_ptr<SafePointRequest> request;
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
  process::MemoryReader& memory = target.memory();
  const uint64_t runtime = target.runtime().runtime_addr;
  state_->request = make_safe_point_request(pid, L, runtime, target.runtime().binary, memory);
  const std::string tag =
      fmt::format("cpython-{}{}-{}", version.major, version.minor, machine_triplet());
  const std::string folder =
      find_extension_folder(pid, target_prefixes(pid, target.runtime().binary), version.minor, tag);
  if (folder.empty()) {
    const std::string python = target_python(pid, version);
    std::error_code ec;
    const bool checkout =
        *SPYGLASS_SOURCE_DIR && fs::is_regular_file(fs::path(SPYGLASS_SOURCE_DIR) / "Makefile", ec);
    const std::string cache = user_cache_folder(tag);
    throw Error(
        ErrorKind::kUnsupported,
        fmt::format("no spyglass extension built for process {}'s CPython {} ({}): install "
                    "spyglass in its environment ({} -m pip install spyglass){}{}",
                    pid, version.str(), tag, python,
                    cache.empty() ? std::string()
                                  : fmt::format(", or into spyglass's per-user cache, leaving its "
                                                "environment as it is ({} -m pip install "
                                                "--target {} spyglass)",
                                                python, cache),
                    checkout ? fmt::format(", or build one: make -C {} python PYTHON={}",
                                           SPYGLASS_SOURCE_DIR, python)
                             : std::string()));
  }

  const std::string dir = fs::path(socket_path).parent_path().string();
  private_folder(dir, uid);
  const std::string base = fmt::format("{}/{}.inject-{}", dir, pid, random_token());
  Injection& out = state_->out;
  out.files = {base + ".py", base + ".claim", base + ".result", base + ".result.tmp"};
  const std::string& script = out.files[0];
  const double deadline = wall_seconds() + deadline_seconds;
  write_private_file(
      script,
      injected_script(script, out.files[1], out.files[2], folder, socket_path, tag, deadline, pid),
      uid);
  try {
    state_->request->arm(script);
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

std::string PendingInjection::not_taken(double seconds) const {
  return state_->request ? state_->request->not_taken(pid_, seconds)
                         : fmt::format("process {} did not answer within {:g} s", pid_, seconds);
}

size_t PendingInjection::armed() const {
  return state_->request ? state_->request->armed() : 0;
}

size_t PendingInjection::withdraw() {
  if (!state_->withdrawn) {
    state_->withdrawn = true;
    state_->taken = state_->request ? state_->request->disarm().taken : 0;
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
    if (state_->request) state_->request->answered();
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
  done.how = state_->request ? state_->request->how() : "";
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
  if (pending.withdraw() != 0) {
    throw Error(ErrorKind::kIo,
                fmt::format("process {} started exact mode's script but it did not answer within "
                            "{:g} s; it closes what it opened by itself once past its deadline",
                            pid, timeout_seconds));
  }
  throw Error(ErrorKind::kIo, pending.not_taken(timeout_seconds));
}

void remove_injection_files(const Injection& injection) {
  for (const auto& file : injection.files) unlink(file.c_str());
}

}  // namespace spyglass::cli
