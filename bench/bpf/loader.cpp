// Loader of the in-kernel CPython stack sampler prototype (pysample.bpf.c): attaches
// spyglass's Target to the PID for the layout, the thread list and code-object names, loads
// the BPF program with the offsets, attaches it to a CPU-clock perf event on every CPU, keeps
// the tid -> PyThreadState map current, drains the ring buffer every --poll-ms (the program
// never wakes it), and prints per-function inclusive sample counts and every counter.
//
//   pysample PID [--rate HZ] [--duration S] [--poll-ms MS] [--refresh-ms MS] [--top N]
//                [--json FILE]
//
// Needs root (CAP_BPF + CAP_PERFMON, and CAP_SYS_PTRACE for the reads userspace makes).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/error.h"
#include "cpython/code_cache.h"
#include "cpython/target.h"
#include "pysample.h"
#include "pysample.skel.h"

using spyglass::cpython::Layout;
using spyglass::cpython::Target;

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// utime + stime of this process, in seconds (getrusage: every thread).
double self_cpu_s() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec * 1e-6;
}

bool alive(pid_t pid) {
  return kill(pid, 0) == 0 || errno != ESRCH;
}

struct Options {
  pid_t pid = 0;
  double rate = 1000;
  double duration = 0;  // 0: until the target exits (or Ctrl-C)
  int poll_ms = 100;
  int refresh_ms = 100;
  int top = 15;
  std::string json;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "pysample: %s\nusage: pysample PID [--rate HZ] [--duration S] [--poll-ms MS] "
               "[--refresh-ms MS] [--top N] [--json FILE]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--rate")
      o.rate = std::stod(value());
    else if (a == "--duration")
      o.duration = std::stod(value());
    else if (a == "--poll-ms")
      o.poll_ms = std::stoi(value());
    else if (a == "--refresh-ms")
      o.refresh_ms = std::stoi(value());
    else if (a == "--top")
      o.top = std::stoi(value());
    else if (a == "--json")
      o.json = value();
    else if (!a.empty() && a[0] != '-' && !o.pid)
      o.pid = std::stoi(a);
    else
      usage(("unknown argument " + a).c_str());
  }
  if (!o.pid) usage("no PID");
  if (o.rate <= 0 || o.rate > 1e6) usage("--rate out of range");
  return o;
}

// Threads of every interpreter: native tid -> PyThreadState address, read as spyglass's walker
// would find them (interpreters list, then each one's threads list).
std::unordered_map<uint32_t, uint64_t> read_threads(Target& target) {
  const Layout& L = target.runtime().layout;
  auto& mem = target.memory();
  std::unordered_map<uint32_t, uint64_t> out;
  uint64_t interp = 0;
  if (!mem.read_value(target.runtime().runtime_addr + L.runtime.interpreters_head, interp))
    return out;
  for (int n = 0; interp && n < 64; n++) {
    uint64_t tstate = 0;
    if (!mem.read_value(interp + L.interp.threads_head, tstate)) break;
    for (int k = 0; tstate && k < 4096; k++) {
      uint64_t native = 0;  // unsigned long
      if (!mem.read_value(tstate + L.thread.native_thread_id, native)) break;
      if (native) out[static_cast<uint32_t>(native)] = tstate;
      uint64_t next = 0;
      if (!mem.read_value(tstate + L.thread.next, next) || next == tstate) break;
      tstate = next;
    }
    uint64_t next = 0;
    if (!mem.read_value(interp + L.interp.next, next) || next == interp) break;
    interp = next;
  }
  return out;
}

struct Aggregate {
  Target* target = nullptr;
  spyglass::cpython::CodeCache* codes = nullptr;
  // Per drain: code address -> function index (names can change when an address is reused,
  // so the map lives for one drain only; the code cache checks the object's identity).
  std::unordered_map<uint64_t, int> resolved;
  std::vector<std::string> names;
  std::unordered_map<std::string, int> index;
  std::vector<uint64_t> inclusive, self;
  uint64_t events = 0, complete = 0, cut = 0, failed = 0, counted = 0;
  uint64_t frames = 0, unknown_frames = 0;
  uint64_t max_depth = 0;
  uint64_t first_ts = 0, last_ts = 0;
  std::vector<int> seen;

  int function(uint64_t addr) {
    auto it = resolved.find(addr);
    if (it != resolved.end()) return it->second;
    std::string name = "<unknown code object>";
    if (const auto* info = codes->get(addr)) {
      name = info->qualname;
    } else {
      unknown_frames++;
    }
    auto [pos, added] = index.emplace(name, static_cast<int>(names.size()));
    if (added) {
      names.push_back(name);
      inclusive.push_back(0);
      self.push_back(0);
    }
    resolved.emplace(addr, pos->second);
    return pos->second;
  }

  void add(const pysample_event& e) {
    events++;
    if (!first_ts) first_ts = e.ts;
    last_ts = e.ts;
    if (e.flags & SAMPLE_READ_FAILED) {
      failed++;
      return;  // a partial stack: counted, never attributed
    }
    if (e.flags & SAMPLE_CUT)
      cut++;
    else
      complete++;
    counted++;
    unsigned depth = std::min<unsigned>(e.depth, PYSAMPLE_MAX_DEPTH);
    max_depth = std::max<uint64_t>(max_depth, depth);
    frames += depth;
    seen.clear();
    for (unsigned i = 0; i < depth; i++) {
      int f = function(e.codes[i]);
      if (i == 0) self[f]++;
      if (std::find(seen.begin(), seen.end(), f) == seen.end()) {
        seen.push_back(f);
        inclusive[f]++;
      }
    }
  }
};

int on_sample(void* ctx, void* data, size_t size) {
  // Variable size: the header, then `depth` code pointers (see pysample.bpf.c).
  const auto* e = static_cast<const pysample_event*>(data);
  if (size < offsetof(pysample_event, codes) ||
      size < offsetof(pysample_event, codes) + std::min<size_t>(e->depth, PYSAMPLE_MAX_DEPTH) * 8)
    return 0;
  static_cast<Aggregate*>(ctx)->add(*e);
  return 0;
}

std::vector<uint64_t> read_counters(int fd) {
  int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> total(CNT_MAX, 0), per(ncpu);
  for (uint32_t k = 0; k < CNT_MAX; k++) {
    if (bpf_map_lookup_elem(fd, &k, per.data()) == 0)
      for (auto v : per) total[k] += v;
  }
  return total;
}

struct ProgStats {
  uint64_t run_time_ns = 0, run_cnt = 0, recursion_misses = 0;
};

ProgStats prog_stats(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  ProgStats s;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
    s.run_time_ns = info.run_time_ns;
    s.run_cnt = info.run_cnt;
    s.recursion_misses = info.recursion_misses;
  }
  return s;
}

int read_sysctl_int(const char* path) {
  std::ifstream f(path);
  int v = -1;
  f >> v;
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt = parse(argc, argv);
  const double cpu_at_start = self_cpu_s();
  std::unique_ptr<Target> target;
  try {
    target = std::make_unique<Target>(opt.pid);
  } catch (const spyglass::Error& e) {
    std::fprintf(stderr, "pysample: %s\n", e.what());
    return e.exit_code();
  }
  const Layout& L = target->runtime().layout;
  if (L.frame_model != spyglass::cpython::FrameModel::kInterpreterFrame) {
    std::fprintf(stderr, "pysample: Python %s keeps frame objects (3.8-3.10): not prototyped\n",
                 L.version.str().c_str());
    return 6;
  }
  const bool use_cframe = L.thread.cframe != 0;  // 3.11-3.12
  for (uint64_t off : {L.frame.previous, L.frame.code}) {
    if (off + 8 > PYSAMPLE_FRAME_READ || off % 8) {
      std::fprintf(stderr, "pysample: frame field at %llu unaligned or past the %d bytes read\n",
                   (unsigned long long)off, PYSAMPLE_FRAME_READ);
      return 7;
    }
  }
  if (!L.frame.owner || L.frame.owner >= PYSAMPLE_FRAME_READ) {
    std::fprintf(stderr, "pysample: no usable frame owner offset\n");
    return 7;
  }

  libbpf_set_print([](enum libbpf_print_level level, const char* fmt, va_list args) {
    return level == LIBBPF_DEBUG ? 0 : std::vfprintf(stderr, fmt, args);
  });
  pysample* skel = pysample__open();
  if (!skel) {
    std::perror("pysample: open BPF object");
    return 1;
  }
  skel->rodata->target_tgid = static_cast<uint32_t>(opt.pid);
  skel->rodata->use_cframe = use_cframe;
  skel->rodata->tstate_frame_off =
      static_cast<uint32_t>(use_cframe ? L.thread.cframe : L.thread.frame);
  skel->rodata->cframe_current_off = static_cast<uint32_t>(L.thread.cframe_current_frame);
  skel->rodata->frame_previous_off = static_cast<uint32_t>(L.frame.previous);
  skel->rodata->frame_code_off = static_cast<uint32_t>(L.frame.code);
  skel->rodata->frame_owner_off = static_cast<uint32_t>(L.frame.owner);
  skel->rodata->owner_cstack = L.frame.owner_cstack;
  skel->rodata->owner_interpreter = L.frame.owner_interpreter;
  skel->rodata->code_tagged = L.frame.code_is_tagged;
  if (int err = pysample__load(skel)) {
    std::fprintf(stderr, "pysample: load BPF program: %s\n", std::strerror(-err));
    return 1;
  }

  // Threads first, so the first samples find their thread states.
  const int tmap = bpf_map__fd(skel->maps.tstates);
  std::unordered_map<uint32_t, uint64_t> threads;
  auto refresh = [&]() {
    auto now = read_threads(*target);
    if (now.empty() && !alive(opt.pid)) return;
    for (auto& [tid, ts] : threads) {
      if (!now.count(tid)) bpf_map_delete_elem(tmap, &tid);
    }
    for (auto& [tid, ts] : now) {
      auto it = threads.find(tid);
      if (it == threads.end() || it->second != ts) bpf_map_update_elem(tmap, &tid, &ts, BPF_ANY);
    }
    threads.swap(now);
  };
  refresh();
  uint64_t refreshes = 1;
  size_t max_threads = threads.size();

  Aggregate agg;
  agg.target = target.get();
  agg.codes = &target->walker().code_cache();
  ring_buffer* rb = ring_buffer__new(bpf_map__fd(skel->maps.samples), on_sample, &agg, nullptr);
  if (!rb) {
    std::perror("pysample: ring buffer");
    return 1;
  }

  const int prog_fd = bpf_program__fd(skel->progs.sample);
  const ProgStats stats_before = prog_stats(prog_fd);
  const int ncpu = libbpf_num_possible_cpus();
  std::vector<bpf_link*> links;
  std::vector<int> pfds;
  perf_event_attr attr{};
  attr.size = sizeof attr;
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_CPU_CLOCK;
  attr.sample_period = static_cast<uint64_t>(1e9 / opt.rate);  // ns for cpu-clock
  attr.freq = 0;
  for (int cpu = 0; cpu < ncpu; cpu++) {
    int fd =
        static_cast<int>(syscall(SYS_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC));
    if (fd < 0) {
      if (errno == ENODEV) continue;  // CPU offline
      std::perror("pysample: perf_event_open");
      return 1;
    }
    bpf_link* link = bpf_program__attach_perf_event(skel->progs.sample, fd);
    if (!link) {
      std::perror("pysample: attach to perf event");
      return 1;
    }
    pfds.push_back(fd);
    links.push_back(link);
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  const double t0 = now_s();
  const double cpu0 = self_cpu_s();
  double next_refresh = t0 + opt.refresh_ms / 1000.0;
  uint64_t polls = 0;
  bool exited = false;
  while (!g_stop) {
    const double t = now_s();
    if (opt.duration > 0 && t - t0 >= opt.duration) break;
    if (!alive(opt.pid)) {
      exited = true;
      break;
    }
    timespec nap{0, static_cast<long>(opt.poll_ms) * 1000000L};
    nanosleep(&nap, nullptr);
    agg.resolved.clear();
    ring_buffer__consume(rb);
    polls++;
    if (now_s() >= next_refresh) {
      refresh();
      refreshes++;
      max_threads = std::max(max_threads, threads.size());
      next_refresh += opt.refresh_ms / 1000.0;
    }
  }
  for (auto* link : links) bpf_link__destroy(link);
  for (int fd : pfds) close(fd);
  const double t1 = now_s();
  agg.resolved.clear();
  ring_buffer__consume(rb);  // what is left (names of an exited target come out unknown)
  const double cpu1 = self_cpu_s();
  const ProgStats stats_after = prog_stats(prog_fd);
  const auto counters = read_counters(bpf_map__fd(skel->maps.counters));
  const double wall = t1 - t0;

  const uint64_t run_cnt = stats_after.run_cnt - stats_before.run_cnt;
  const uint64_t run_ns = stats_after.run_time_ns - stats_before.run_time_ns;
  const bool stats_on = read_sysctl_int("/proc/sys/kernel/bpf_stats_enabled") == 1;

  static const char* kCounterNames[CNT_MAX] = {"events (all tasks, all CPUs)",
                                               "samples in target",
                                               "  no thread state for tid",
                                               "  no current frame",
                                               "walks completed",
                                               "walks cut short (depth/visits)",
                                               "reads failed",
                                               "ring buffer full (dropped)"};
  static const char* kCounterKeys[CNT_MAX] = {"events",    "in_target", "no_tstate",   "no_frame",
                                              "walk_done", "walk_cut",  "read_failed", "rb_full"};

  std::printf("pysample · pid %d · Python %s · %s · rate %.0f Hz per CPU (%d CPUs) · %.2f s%s\n",
              opt.pid, L.version.str().c_str(),
              use_cframe ? "tstate->cframe->current_frame" : "tstate->current_frame", opt.rate,
              static_cast<int>(pfds.size()), wall, exited ? " (target exited)" : "");
  std::printf("threads mapped: %zu now, %zu at most; %llu refreshes, %llu polls\n", threads.size(),
              max_threads, (unsigned long long)refreshes, (unsigned long long)polls);
  std::printf("\nkernel counters:\n");
  for (int i = 0; i < CNT_MAX; i++)
    std::printf("  %-34s %12llu\n", kCounterNames[i], (unsigned long long)counters[i]);
  std::printf(
      "userspace: %llu samples drained (%llu complete, %llu cut, %llu read-failed "
      "not attributed); %llu frames, mean depth %.1f, max %llu; %llu frames unnamed\n",
      (unsigned long long)agg.events, (unsigned long long)agg.complete, (unsigned long long)agg.cut,
      (unsigned long long)agg.failed, (unsigned long long)agg.frames,
      agg.counted ? static_cast<double>(agg.frames) / agg.counted : 0.0,
      (unsigned long long)agg.max_depth, (unsigned long long)agg.unknown_frames);
  std::printf("\ncost:\n");
  if (stats_on && run_cnt) {
    std::printf(
        "  BPF program: %llu runs, %.3f us per run, %.3f %% of a core (all CPUs' runs "
        "over the wall time)\n",
        (unsigned long long)run_cnt, run_ns / 1e3 / run_cnt, 100.0 * run_ns / 1e9 / wall);
  } else {
    std::printf("  BPF program: no run time (sysctl kernel.bpf_stats_enabled=1 to measure)\n");
  }
  std::printf(
      "  loader: %.3f s CPU while sampling = %.3f %% of a core; %.3f s in all (with "
      "attach and load)\n",
      cpu1 - cpu0, 100.0 * (cpu1 - cpu0) / wall, cpu1 - cpu_at_start);

  std::vector<int> order(agg.names.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = static_cast<int>(i);
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return agg.inclusive[a] > agg.inclusive[b]; });
  std::printf("\n%-40s %10s %8s %10s %10s\n", "function (inclusive, once per sample)", "samples",
              "share", "cpu s", "self");
  for (int k = 0; k < std::min<int>(opt.top, static_cast<int>(order.size())); k++) {
    int i = order[k];
    std::printf("%-40.40s %10llu %7.1f%% %10.3f %10llu\n", agg.names[i].c_str(),
                (unsigned long long)agg.inclusive[i],
                agg.counted ? 100.0 * agg.inclusive[i] / agg.counted : 0.0,
                agg.inclusive[i] / opt.rate, (unsigned long long)agg.self[i]);
  }

  if (!opt.json.empty()) {
    nlohmann::json j;
    j["pid"] = opt.pid;
    j["python"] = L.version.str();
    j["rate"] = opt.rate;
    j["cpus"] = pfds.size();
    j["wall_seconds"] = wall;
    j["target_exited"] = exited;
    for (int i = 0; i < CNT_MAX; i++) j["counters"][kCounterKeys[i]] = counters[i];
    j["drained"] = {{"samples", agg.events},
                    {"complete", agg.complete},
                    {"cut", agg.cut},
                    {"read_failed", agg.failed},
                    {"frames", agg.frames},
                    {"unknown_frames", agg.unknown_frames},
                    {"max_depth", agg.max_depth}};
    j["bpf"] = {{"stats_enabled", stats_on},
                {"run_cnt", run_cnt},
                {"run_time_ns", run_ns},
                {"recursion_misses", stats_after.recursion_misses - stats_before.recursion_misses}};
    j["loader_cpu_seconds"] = cpu1 - cpu0;
    j["loader_cpu_seconds_total"] = cpu1 - cpu_at_start;
    j["threads_max"] = max_threads;
    for (size_t i = 0; i < agg.names.size(); i++) {
      j["functions"][agg.names[i]] = {{"inclusive", agg.inclusive[i]}, {"self", agg.self[i]}};
    }
    std::ofstream(opt.json) << j.dump(1) << "\n";
  }
  ring_buffer__free(rb);
  pysample__destroy(skel);
  return 0;
}
