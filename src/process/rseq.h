// Where a thread of the target runs, read from its memory instead of /proc. glibc 2.35+
// registers a restartable-sequences area (struct rseq) for every thread, at a fixed offset
// from the thread pointer (its pthread_t), and the kernel writes the CPU the thread runs on
// into it each time the thread returns to user space after a preemption or a move. So the
// CPU of a thread a walk already knows by its pthread_t is one small read away, in the same
// batch as the rest of the walk, instead of a read and parse of /proc/PID/task/TID/stat
// (~3 µs, and a file kept open per thread).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace spyglass::process {

class MemoryReader;

// From a thread's pthread_t to its rseq area's cpu_id field (struct rseq {u32 cpu_id_start;
// u32 cpu_id; ...}): glibc's __rseq_offset plus 4. nullopt when the target's dynamic loader
// has no rseq (glibc before 2.35, musl, a static binary) or did not register it (the
// glibc.pthread.rseq=0 tunable, a kernel without rseq): callers fall back to /proc.
std::optional<int64_t> rseq_cpu_offset(pid_t pid, MemoryReader& memory);

// The CPU number held at `addr` (a thread's pthread_t plus rseq_cpu_offset), -1 when it is
// unreadable or not a CPU number (the kernel's "not registered" values are ~0 and ~1). Read
// as a poll (MemoryReader::read_polled): -1 also when a prefetch holds no copy yet.
int read_rseq_cpu(MemoryReader& memory, uint64_t addr);

}  // namespace spyglass::process
