// The results of timing chosen functions, shared by the sampler (estimates) and exact mode
// (counts): one model, one console table, one JSON shape.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace spyglass::report {

struct Latency {                                                 // exact mode only
  double mean = 0, min = 0, max = 0, p50 = 0, p90 = 0, p99 = 0;  // seconds
  // The calls' latency histogram, lowest first: (seconds, calls) per bucket holding calls (1/16
  // of a power of two wide). What merging several processes' percentiles takes.
  std::vector<std::pair<double, uint64_t>> histogram;
};

// One function's figures, for one thread or merged over threads.
struct Figures {
  double seconds = 0;        // inclusive
  double self_seconds = 0;   // at the top of the stack (sampling) / minus chosen callees (exact)
  uint64_t samples = 0;      // sampling
  double error_seconds = 0;  // sampling: the error bound (see docs/accuracy.md)
  std::optional<uint64_t> calls;                 // exact
  std::optional<Latency> latency;                // exact
  std::optional<double> coroutine_wall_seconds;  // exact: first start to completion
};

struct ThreadFigures {
  uint64_t thread_id = 0;
  int native_id = 0;
  std::string name;
  Figures figures;
};

// One function a pattern matched, with its own figures where the mode has them.
struct MatchResult {
  std::string label;     // "qualname (file:line)", the file from its top package down
  std::string function;  // qualified name
  std::string file;      // as the code object has it
  int line = 0;          // the function's first line
  std::string module;    // __name__ (exact mode), empty when sampling
  bool has_figures = false;
  Figures figures;  // inclusive counted once per sample; self at the top of the stack
  double share = 0;
};

struct FunctionResult {
  std::string name;                  // the pattern as given
  std::vector<MatchResult> matches;  // the functions it matched, heaviest first
  bool has_data = false;             // false: "no data" (never seen running)
  double share = 0;                  // inclusive seconds / profiled seconds, 0..1 per thread sum
  Figures figures;                   // merged over threads
  std::vector<ThreadFigures> threads;
};

struct Results {
  std::string mode;  // "wall", "cpu", "gil" or "exact"
  int pid = 0;
  std::string python_version;
  double duration_seconds = 0;  // profiled wall time
  double rate_hz = 0;           // requested sampling rate (sampling)
  double achieved_rate_hz = 0;
  uint64_t samples = 0;  // sampling rounds
  uint64_t late_samples = 0;
  uint64_t missed_samples = 0;
  uint64_t thread_samples = 0;       // thread stacks seen
  uint64_t reread_stacks = 0;        // thread stacks read again after catching them mid-change
  uint64_t returned_frames = 0;      // 3.8-3.10: newest frames already returned, read from caller
  uint64_t frames_read_again = 0;    // 3.8-3.10: frames whose copy looked finished, read live
  uint64_t returning_frames = 0;     // 3.12+: newest functions caught returning, counted to them
  uint64_t incomplete_stacks = 0;    // thread stacks that stayed incomplete
  uint64_t unreadable_samples = 0;   // samples whose walk failed: dropped whole
  uint64_t slow_samples = 0;         // samples whose reading was slow (slow_read_seconds)
  double slow_seconds = 0;           // ... their reading time, summed
  uint64_t reread_thread_lists = 0;  // thread lists read again after breaking off mid-change
  uint64_t cut_thread_lists = 0;     // ... still cut: the threads after the break not read
  uint64_t unpaused_threads = 0;     // --blocking: threads a sample could not pause, summed
  // Async-aware sampling (wall mode): suspended asyncio tasks read as stacks of their own.
  bool async_aware = false;
  uint64_t task_samples = 0;      // suspended tasks' stacks recorded
  uint64_t unreadable_tasks = 0;  // tasks found but not readable: not counted
  uint64_t cut_task_chains = 0;   // task stacks whose chain of coroutines broke off
  uint64_t cut_task_lists = 0;    // task lists cut short: the tasks after the break not read
  // Drawing only (no figure depends on them): task stacks drawn under their awaiter, and
  // records of who awaits a task that could not be read (cpython/task_links.h).
  uint64_t linked_task_samples = 0;
  uint64_t unreadable_task_links = 0;
  std::string tasks_source;  // where the tasks were read from
  // Code objects met by the walks: read, and known unchanged without a read (3.12+).
  uint64_t code_reads = 0;
  uint64_t code_proofs = 0;
  // Readings of the code counter that could not be right, and whether it was turned off.
  uint64_t counter_faults = 0;
  bool counter_off = false;
  // Thread stacks read, and known unchanged without a read (no other thread took the GIL).
  uint64_t stacks_read = 0;
  uint64_t unchanged_stacks = 0;
  double mean_walk_us = 0;         // sampling: time to walk all threads, per round
  double mean_read_us = 0;         // of which reading the target's memory (system calls)
  uint64_t read_calls = 0;         // those system calls (process_vm_readv), in all
  double sampler_cpu_seconds = 0;  // CPU time of spyglass's sampling thread while it sampled
  std::string scheduling;          // the sampling thread's, at the end ("SCHED_FIFO", ...)
  uint64_t realtime_given_up = 0;  // times it gave up real-time priority, needing a whole core
  bool target_exited = false;
  std::vector<FunctionResult> functions;  // every chosen function, in the order chosen
  std::vector<std::string> notes;         // shown under the table
};

struct TableStyle {
  bool unicode = true;      // box drawing; plain ASCII otherwise
  bool per_thread = false;  // a row per thread under each function
  bool color = false;
  // Under a pattern that matched several functions, this many of them as rows of their own,
  // heaviest first; the rest are folded into one line.
  size_t max_matches = kDefaultMaxMatches;
  // The terminal's width: the Function column is narrowed (names shortened) to fit; 0: any.
  size_t max_width = 0;
  static constexpr size_t kDefaultMaxMatches = 10;
};

// The console table: aligned, human units, sorted by inclusive time, "no data" rows last.
std::string render_table(const Results& results, const TableStyle& style);
// {"functions": [...], "mode", "pid", "duration_seconds", "rate_hz", ...}; each function's
// "matches" lists every function matched, with its figures when the mode has them.
nlohmann::json to_json(const Results& results);
// Human units: "1.23 s", "45.6 ms", "789 µs" (or "us" when !unicode).
std::string format_seconds(double seconds, bool unicode = true);
// True when the terminal on stdout expects UTF-8 (LANG/LC_ALL/LC_CTYPE).
bool terminal_is_utf8();

// The error bound of a sampled time (see docs/accuracy.md): the half-width of a 95% Wilson score
// interval on the fraction hits/total_samples, scaled by the time those samples cover, plus one
// sampling period (duration / total_samples) for the quantisation at the edges. total_samples
// and duration_seconds describe the samples the hits were counted among (for figures merged over
// threads: all those threads' samples and their summed time). 0 when there were no samples.
double sampling_error_seconds(uint64_t hits, uint64_t total_samples, double duration_seconds);

}  // namespace spyglass::report
