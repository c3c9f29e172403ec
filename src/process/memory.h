// Reading another process's memory: one interface, a live and a snapshot implementation,
// so the stack walker can be unit-tested and benchmarked on captured memory.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace spyglass::process {

using RemoteAddr = uint64_t;

// One read of a batch: `size` bytes from `addr` into `out`.
struct ReadRequest {
  RemoteAddr addr;
  void* out;
  size_t size;
};

class MemoryReader;

// Reads what it can of `requests`: a range that fails (its memory unmapped meanwhile) ends a
// batch, so the next batch starts past it, at most `max_batches` system calls in all (few
// fail, and a batch is one call). `read[i]` is 1 for each request read whole.
void read_batch_past_failures(MemoryReader& memory, std::span<const ReadRequest> requests,
                              int max_batches, std::vector<uint8_t>& read);

class MemoryReader {
 public:
  virtual ~MemoryReader() = default;
  // Reads exactly `size` bytes. Returns false (never throws) when any byte is unreadable.
  virtual bool read(RemoteAddr addr, void* out, size_t size) = 0;
  // Reads a batch in as few system calls as possible. Returns how many requests, from the
  // first, were read completely; the rest are unspecified.
  virtual size_t read_batch(std::span<const ReadRequest> requests);
  // Number of system calls (or equivalent) made so far; for benchmarks.
  virtual uint64_t calls() const { return 0; }
  // Bytes held from an earlier instant (a prefetch) are fetched again, so the next reads see
  // the process as it is now: a walker that caught a stack mid-change reads it once more.
  virtual void refresh() {}
  // Reads the process as it is now, past any bytes held from an earlier instant (a prefetch):
  // a walker that finds one value out of step with the others looks at it again, alone.
  virtual bool read_now(RemoteAddr addr, void* out, size_t size) { return read(addr, out, size); }
  // Reads bytes copied no earlier than everything this reader holds from an earlier instant:
  // from the process now, or where a prefetch copied them after all else it holds (its
  // batch's last range, see PrefetchingMemory), which costs no system call of its own.
  virtual bool read_last(RemoteAddr addr, void* out, size_t size) {
    return read_now(addr, out, size);
  }
  // A small read that a caller wants now and then, not every walk (a poll: where a thread runs,
  // whether sys.modules grew). A prefetch serves it from its batch when it was asked for during
  // the walk before, and otherwise fetches it with the next batch only: a range polled every
  // hundredth walk is not a range of every batch (each range of a batch costs ~0.3 µs). False
  // when not held yet (ask again in a later walk) or unreadable. Other readers read it now.
  virtual bool read_polled(RemoteAddr addr, void* out, size_t size) {
    return read(addr, out, size);
  }
  // The `size` bytes at `addr` where this reader already holds them (a prefetch), without a
  // copy; nullptr when it does not, and the caller read()s them. Valid until the next
  // refresh() or walk: a steady-state walk then copies nothing.
  virtual const uint8_t* view(RemoteAddr /*addr*/, size_t /*size*/) { return nullptr; }
  // The granule of readability: when one byte of an aligned block of this size can be read,
  // all of it can (a live process's page). 0 when there is none (a snapshot holds arbitrary
  // ranges): a reader then only reads what it is asked for.
  virtual size_t page_size() const { return 0; }
  // view(), else read() into `scratch` (at least `size` bytes); nullptr when unreadable.
  const uint8_t* view_or_read(RemoteAddr addr, size_t size, uint8_t* scratch);

  template <typename T>
  bool read_value(RemoteAddr addr, T& out) {
    return read(addr, &out, sizeof(T));
  }
};

// Live process: process_vm_readv, falling back to /proc/PID/mem where it is refused.
class LiveMemory : public MemoryReader {
 public:
  explicit LiveMemory(pid_t pid);
  ~LiveMemory() override;
  LiveMemory(const LiveMemory&) = delete;  // owns the /proc/PID/mem descriptor
  LiveMemory& operator=(const LiveMemory&) = delete;
  bool read(RemoteAddr addr, void* out, size_t size) override;
  size_t read_batch(std::span<const ReadRequest> requests) override;
  uint64_t calls() const override { return calls_; }
  size_t page_size() const override;
  pid_t pid() const { return pid_; }
  // Reads one byte of mapped memory to find out whether reading works at all; throws Error
  // (kPermission with the cause and the fix, or kNoSuchProcess) when it does not.
  void check_access(RemoteAddr probe_addr);
  // errno of the last failed read (0 when none failed yet); EFAULT/EIO for unmapped memory.
  int last_error() const { return last_errno_; }
  // True once process_vm_readv was refused and reads go through /proc/PID/mem.
  bool uses_proc_mem() const { return use_proc_mem_; }

 private:
  bool read_proc_mem(RemoteAddr addr, void* out, size_t size);
  // After process_vm_readv failed with ENOSYS/EPERM: switches to /proc/PID/mem if it opens.
  bool switch_to_proc_mem();
  pid_t pid_;
  int mem_fd_ = -1;
  bool use_proc_mem_ = false;
  bool proc_mem_tried_ = false;
  uint64_t calls_ = 0;
  int last_errno_ = 0;
};

// Captured memory: a set of regions; reads outside them fail. Saved to and loaded from a file
// so walker tests and benchmarks run without a live process.
class SnapshotMemory : public MemoryReader {
 public:
  SnapshotMemory() = default;
  // Adds bytes at `addr`; overlapping or adjacent regions are merged, the new bytes winning.
  void add_region(RemoteAddr addr, std::vector<uint8_t> bytes);
  bool read(RemoteAddr addr, void* out, size_t size) override;
  uint64_t calls() const override { return calls_; }
  const std::map<RemoteAddr, std::vector<uint8_t>>& regions() const { return regions_; }

 private:
  std::map<RemoteAddr, std::vector<uint8_t>> regions_;
  uint64_t calls_ = 0;
};

// Forwards to `inner` (a snapshot, say) and counts the system calls a LiveMemory would make
// for the same reads: one per read, one per IOV_MAX requests of a batch. For benchmarks and
// tests that walk captured memory.
class CallCountingMemory : public MemoryReader {
 public:
  explicit CallCountingMemory(MemoryReader& inner) : inner_(inner) {}
  bool read(RemoteAddr addr, void* out, size_t size) override;
  size_t read_batch(std::span<const ReadRequest> requests) override;
  uint64_t calls() const override { return calls_; }
  size_t page_size() const override { return inner_.page_size(); }

 private:
  MemoryReader& inner_;
  uint64_t calls_ = 0;
};

// Records every region read through `inner` so the reads can be replayed as a SnapshotMemory.
class RecordingMemory : public MemoryReader {
 public:
  explicit RecordingMemory(MemoryReader& inner) : inner_(inner) {}
  bool read(RemoteAddr addr, void* out, size_t size) override;
  // Forwards the batch to `inner` (same system calls) and records the completed requests.
  size_t read_batch(std::span<const ReadRequest> requests) override;
  uint64_t calls() const override { return inner_.calls(); }
  size_t page_size() const override { return inner_.page_size(); }
  SnapshotMemory& snapshot() { return snapshot_; }

 private:
  MemoryReader& inner_;
  SnapshotMemory snapshot_;
};

// Snapshot files: the regions of a SnapshotMemory and a free-form metadata string (e.g. JSON
// naming the Python version and the addresses a walker test starts from). Little-endian,
// "SPYGSNAP" magic, version 1. Throw Error(kIo) naming the path when the file cannot be written,
// read, or does not check out (a loaded file is untrusted: every length is bounds-checked).
struct LoadedSnapshot {
  SnapshotMemory memory;
  std::string metadata;
};
void save_snapshot(const SnapshotMemory& snapshot, const std::string& path,
                   const std::string& metadata);
LoadedSnapshot load_snapshot(const std::string& path);

}  // namespace spyglass::process
