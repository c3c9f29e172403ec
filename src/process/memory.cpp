#include "process/memory.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <limits.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#include "common/error.h"
#include "process/access.h"
#include "process/maps.h"

namespace spyglass::process {
namespace {

// The kernel refuses more iovecs than this in one process_vm_readv call.
constexpr size_t kMaxIovecs = IOV_MAX;
constexpr uint64_t kMaxFileOffset = static_cast<uint64_t>(std::numeric_limits<off_t>::max());

bool should_try_proc_mem(int err) {
  return err == ENOSYS || err == EPERM;
}

}  // namespace

void read_batch_past_failures(MemoryReader& memory, std::span<const ReadRequest> requests,
                              int max_batches, std::vector<uint8_t>& read) {
  read.assign(requests.size(), 0);
  size_t start = 0;
  for (int batch = 0; batch < max_batches && start < requests.size(); ++batch) {
    const size_t done = memory.read_batch(requests.subspan(start));
    std::fill_n(read.begin() + static_cast<ptrdiff_t>(start), done, uint8_t{1});
    start += done + 1;
  }
}

size_t MemoryReader::read_batch(std::span<const ReadRequest> requests) {
  for (size_t i = 0; i < requests.size(); ++i) {
    if (!read(requests[i].addr, requests[i].out, requests[i].size)) return i;
  }
  return requests.size();
}

// ---------------------------------------------------------------------------------------------
// LiveMemory

LiveMemory::LiveMemory(pid_t pid) : pid_(pid) {}

LiveMemory::~LiveMemory() {
  if (mem_fd_ >= 0) close(mem_fd_);
}

size_t LiveMemory::page_size() const {
  static const size_t size = [] {
    long s = sysconf(_SC_PAGESIZE);
    return s > 0 ? static_cast<size_t>(s) : size_t{4096};
  }();
  return size;
}

bool LiveMemory::switch_to_proc_mem() {
  if (proc_mem_tried_) return use_proc_mem_;
  proc_mem_tried_ = true;
  int fd = open(fmt::format("/proc/{}/mem", pid_).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;  // keep the errno of process_vm_readv: it names the real cause
  mem_fd_ = fd;
  use_proc_mem_ = true;
  return true;
}

bool LiveMemory::read_proc_mem(RemoteAddr addr, void* out, size_t size) {
  if (addr > kMaxFileOffset || size > kMaxFileOffset - addr) {
    last_errno_ = EFAULT;  // pread takes a signed offset: such addresses are never user memory
    return false;
  }
  auto* dest = static_cast<uint8_t*>(out);
  size_t done = 0;
  while (done < size) {
    ++calls_;
    ssize_t got = pread(mem_fd_, dest + done, size - done, static_cast<off_t>(addr + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      last_errno_ = errno;
      return false;
    }
    if (got == 0) {  // the process has no memory any more (it exited)
      last_errno_ = EIO;
      return false;
    }
    done += static_cast<size_t>(got);
  }
  return true;
}

bool LiveMemory::read(RemoteAddr addr, void* out, size_t size) {
  if (size == 0) return true;
  if (use_proc_mem_) return read_proc_mem(addr, out, size);
  struct iovec local = {out, size};
  struct iovec remote = {reinterpret_cast<void*>(addr), size};
  ++calls_;
  ssize_t got = process_vm_readv(pid_, &local, 1, &remote, 1, 0);
  if (got == static_cast<ssize_t>(size)) return true;
  if (got >= 0) {
    last_errno_ = EFAULT;  // partial: the range runs into unmapped memory
    return false;
  }
  last_errno_ = errno;
  if (should_try_proc_mem(last_errno_) && switch_to_proc_mem()) {
    return read_proc_mem(addr, out, size);
  }
  return false;
}

size_t LiveMemory::read_batch(std::span<const ReadRequest> requests) {
  if (use_proc_mem_) return MemoryReader::read_batch(requests);
  std::array<struct iovec, kMaxIovecs> local;
  std::array<struct iovec, kMaxIovecs> remote;
  size_t done = 0;
  while (done < requests.size()) {
    size_t count = std::min(requests.size() - done, kMaxIovecs);
    for (size_t i = 0; i < count; ++i) {
      const ReadRequest& request = requests[done + i];
      local[i] = {request.out, request.size};
      remote[i] = {reinterpret_cast<void*>(request.addr), request.size};
    }
    ++calls_;
    ssize_t got = process_vm_readv(pid_, local.data(), count, remote.data(), count, 0);
    if (got < 0) {
      last_errno_ = errno;
      if (should_try_proc_mem(last_errno_) && switch_to_proc_mem()) {
        return done + MemoryReader::read_batch(requests.subspan(done));
      }
      got = 0;  // nothing was transferred; leading empty requests still count as complete
    }
    // The kernel copies remote iovecs in order and stops at the first one it cannot read, so
    // the byte count tells which requests were read completely.
    size_t remaining = static_cast<size_t>(got);
    size_t completed = 0;
    while (completed < count && requests[done + completed].size <= remaining) {
      remaining -= requests[done + completed].size;
      ++completed;
    }
    done += completed;
    if (completed < count) {
      if (got > 0 || last_errno_ == 0) last_errno_ = EFAULT;
      return done;
    }
  }
  return done;
}

void LiveMemory::check_access(RemoteAddr probe_addr) {
  uint8_t byte = 0;
  if (read(probe_addr, &byte, 1)) return;
  int err = last_errno_;
  if (err == ESRCH || !process_exists(pid_)) throw access_error(pid_, ESRCH);
  if (err == EPERM || err == EACCES) throw access_error(pid_, err);
  throw Error(ErrorKind::kIo, fmt::format("cannot read the memory of process {} at {:#x}: {}", pid_,
                                          probe_addr, std::strerror(err)));
}

// ---------------------------------------------------------------------------------------------
// SnapshotMemory

void SnapshotMemory::add_region(RemoteAddr addr, std::vector<uint8_t> bytes) {
  if (bytes.empty()) return;
  RemoteAddr end = addr + bytes.size();
  if (end < addr) return;  // wraps around the address space: not memory

  auto next = regions_.upper_bound(addr);
  // Common when recording: the new bytes touch only the region that starts at or before them.
  if (next != regions_.begin()) {
    auto prev = std::prev(next);
    RemoteAddr prev_end = prev->first + prev->second.size();
    if (prev_end >= addr && (next == regions_.end() || next->first > end)) {
      size_t offset = addr - prev->first;
      if (end > prev_end) prev->second.resize(offset + bytes.size());
      std::memcpy(prev->second.data() + offset, bytes.data(), bytes.size());
      return;
    }
  }
  // General case: merge every region overlapping or adjacent to [addr, end].
  auto first = next;
  if (first != regions_.begin()) {
    auto prev = std::prev(first);
    if (prev->first + prev->second.size() >= addr) first = prev;
  }
  auto last = first;
  RemoteAddr merged_start = addr;
  RemoteAddr merged_end = end;
  while (last != regions_.end() && last->first <= end) {
    merged_start = std::min(merged_start, last->first);
    merged_end = std::max(merged_end, last->first + last->second.size());
    ++last;
  }
  if (first == last) {
    regions_.emplace(addr, std::move(bytes));
    return;
  }
  std::vector<uint8_t> merged(merged_end - merged_start);
  for (auto it = first; it != last; ++it) {
    std::memcpy(merged.data() + (it->first - merged_start), it->second.data(), it->second.size());
  }
  std::memcpy(merged.data() + (addr - merged_start), bytes.data(), bytes.size());
  regions_.erase(first, last);
  regions_.emplace(merged_start, std::move(merged));
}

const uint8_t* MemoryReader::view_or_read(RemoteAddr addr, size_t size, uint8_t* scratch) {
  if (const uint8_t* held = view(addr, size)) return held;
  return read(addr, scratch, size) ? scratch : nullptr;
}

bool SnapshotMemory::read(RemoteAddr addr, void* out, size_t size) {
  ++calls_;
  if (size == 0) return true;
  if (addr + size < addr) return false;
  auto it = regions_.upper_bound(addr);
  if (it == regions_.begin()) return false;
  --it;
  auto* dest = static_cast<uint8_t*>(out);
  RemoteAddr cursor = addr;
  size_t left = size;
  // A read may continue into the next region when that one starts exactly where this one ends.
  while (left > 0) {
    if (it == regions_.end() || it->first > cursor) return false;
    RemoteAddr region_end = it->first + it->second.size();
    if (cursor >= region_end) return false;
    size_t chunk = std::min<uint64_t>(left, region_end - cursor);
    std::memcpy(dest, it->second.data() + (cursor - it->first), chunk);
    dest += chunk;
    cursor += chunk;
    left -= chunk;
    ++it;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// RecordingMemory

bool RecordingMemory::read(RemoteAddr addr, void* out, size_t size) {
  if (!inner_.read(addr, out, size)) return false;
  const auto* bytes = static_cast<const uint8_t*>(out);
  snapshot_.add_region(addr, std::vector<uint8_t>(bytes, bytes + size));
  return true;
}

bool CallCountingMemory::read(RemoteAddr addr, void* out, size_t size) {
  ++calls_;
  return inner_.read(addr, out, size);
}

size_t CallCountingMemory::read_batch(std::span<const ReadRequest> requests) {
  calls_ += (requests.size() + kMaxIovecs - 1) / kMaxIovecs;
  size_t done = 0;
  while (done < requests.size() &&
         inner_.read(requests[done].addr, requests[done].out, requests[done].size)) {
    ++done;
  }
  return done;
}

size_t RecordingMemory::read_batch(std::span<const ReadRequest> requests) {
  size_t completed = inner_.read_batch(requests);
  for (size_t i = 0; i < completed; ++i) {
    const auto* bytes = static_cast<const uint8_t*>(requests[i].out);
    snapshot_.add_region(requests[i].addr, std::vector<uint8_t>(bytes, bytes + requests[i].size));
  }
  return completed;
}

// ---------------------------------------------------------------------------------------------
// Snapshot files
//
// Layout (little-endian): "SPYGSNAP", u32 version, u32 reserved (0), u64 metadata length,
// metadata bytes, u64 region count, then per region: u64 address, u64 length, bytes.

namespace {

constexpr char kSnapshotMagic[8] = {'S', 'P', 'Y', 'G', 'S', 'N', 'A', 'P'};
constexpr uint32_t kSnapshotVersion = 1;
static_assert(std::endian::native == std::endian::little, "snapshot files are little-endian");

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

// Reads the untrusted file: every read checks the bytes left.
class Cursor {
 public:
  Cursor(const std::string& data, const std::string& path) : data_(data), path_(path) {}
  template <typename T>
  T take() {
    T value;
    std::memcpy(&value, need(sizeof(T)), sizeof(T));
    return value;
  }
  const char* need(uint64_t size) {
    if (size > data_.size() - pos_) fail(fmt::format("truncated at byte {}", pos_));
    const char* at = data_.data() + pos_;
    pos_ += size;
    return at;
  }
  size_t left() const { return data_.size() - pos_; }
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(ErrorKind::kIo, fmt::format("cannot load snapshot {}: {}", path_, why));
  }

 private:
  const std::string& data_;
  const std::string& path_;
  size_t pos_ = 0;
};

}  // namespace

void save_snapshot(const SnapshotMemory& snapshot, const std::string& path,
                   const std::string& metadata) {
  std::string header;
  header.append(kSnapshotMagic, sizeof(kSnapshotMagic));
  put<uint32_t>(header, kSnapshotVersion);
  put<uint32_t>(header, 0);
  put<uint64_t>(header, metadata.size());
  header += metadata;
  put<uint64_t>(header, snapshot.regions().size());

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    throw Error(ErrorKind::kIo,
                fmt::format("cannot write snapshot {}: {}", path, std::strerror(errno)));
  }
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const auto& [addr, bytes] : snapshot.regions()) {
    std::string region_header;
    put<uint64_t>(region_header, addr);
    put<uint64_t>(region_header, bytes.size());
    out.write(region_header.data(), static_cast<std::streamsize>(region_header.size()));
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
  }
  out.flush();
  if (!out) throw Error(ErrorKind::kIo, fmt::format("cannot write snapshot {}", path));
}

LoadedSnapshot load_snapshot(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(ErrorKind::kIo,
                fmt::format("cannot load snapshot {}: {}", path, std::strerror(errno)));
  }
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad())
    throw Error(ErrorKind::kIo, fmt::format("cannot load snapshot {}: read error", path));

  Cursor cursor(data, path);
  if (data.size() < sizeof(kSnapshotMagic) ||
      std::memcmp(data.data(), kSnapshotMagic, sizeof(kSnapshotMagic)) != 0) {
    cursor.fail("not a spyglass snapshot file");
  }
  cursor.need(sizeof(kSnapshotMagic));
  uint32_t version = cursor.take<uint32_t>();
  if (version != kSnapshotVersion) cursor.fail(fmt::format("unknown version {}", version));
  cursor.take<uint32_t>();

  LoadedSnapshot loaded;
  uint64_t metadata_size = cursor.take<uint64_t>();
  const char* metadata = cursor.need(metadata_size);
  loaded.metadata.assign(metadata, metadata_size);

  uint64_t region_count = cursor.take<uint64_t>();
  if (region_count > cursor.left() / (2 * sizeof(uint64_t))) {
    cursor.fail(fmt::format("region count {} exceeds the file", region_count));
  }
  for (uint64_t i = 0; i < region_count; ++i) {
    uint64_t addr = cursor.take<uint64_t>();
    uint64_t size = cursor.take<uint64_t>();
    if (addr + size < addr) cursor.fail(fmt::format("region {} wraps around", i));
    const auto* bytes = reinterpret_cast<const uint8_t*>(cursor.need(size));
    loaded.memory.add_region(addr, std::vector<uint8_t>(bytes, bytes + size));
  }
  if (cursor.left() != 0) cursor.fail(fmt::format("{} trailing bytes", cursor.left()));
  return loaded;
}

}  // namespace spyglass::process
