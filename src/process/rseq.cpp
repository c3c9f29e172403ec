#include "process/rseq.h"

#include <sched.h>

#include <string>

#include "common/error.h"
#include "process/elf.h"
#include "process/maps.h"
#include "process/memory.h"

namespace spyglass::process {
namespace {

// struct rseq's cpu_id follows its cpu_id_start (linux/rseq.h).
constexpr int64_t kCpuIdField = 4;
// __rseq_size is what of the area the kernel fills (glibc 2.35-2.39: 20 bytes, the
// original fields), 0 when nothing was registered; cpu_id must lie within it.
constexpr uint32_t kMinRseqSize = kCpuIdField + 4;
// glibc puts the area inside or right beside struct pthread: an offset beyond this is not one.
constexpr int64_t kMaxRseqOffset = 1 << 20;

bool is_dynamic_loader(const std::string& path) {
  const std::string base = path.substr(path.rfind('/') + 1);
  return (base.starts_with("ld-") || base.starts_with("ld64.")) &&
         base.find(".so") != std::string::npos;
}

}  // namespace

std::optional<int64_t> rseq_cpu_offset(pid_t pid, MemoryReader& memory) {
  std::vector<Mapping> maps;
  try {
    maps = read_maps(pid);
  } catch (const Error&) {
    return std::nullopt;
  }
  for (const Mapping& m : maps) {
    if (m.offset != 0 || m.path.empty() || m.path[0] != '/' || !is_dynamic_loader(m.path)) {
      continue;
    }
    std::optional<ElfSymbol> offset_symbol, size_symbol;
    uint64_t bias = 0;
    try {
      ElfFile elf(path_in_process_root(pid, m.path));
      offset_symbol = elf.symbol("__rseq_offset");
      size_symbol = elf.symbol("__rseq_size");
      bias = m.start - elf.first_load_vaddr();
    } catch (const Error&) {
      continue;
    }
    if (!offset_symbol || !size_symbol) return std::nullopt;  // a loader without rseq
    int64_t offset = 0;
    uint32_t size = 0;
    // Untrusted like the rest of the target: a registered area of a plausible size, at a
    // plausible distance from the thread pointer.
    if (!memory.read_value(bias + offset_symbol->value, offset) ||
        !memory.read_value(bias + size_symbol->value, size) || size < kMinRseqSize ||
        offset < -kMaxRseqOffset || offset > kMaxRseqOffset) {
      return std::nullopt;
    }
    return offset + kCpuIdField;
  }
  return std::nullopt;
}

int read_rseq_cpu(MemoryReader& memory, uint64_t addr) {
  uint32_t cpu = 0;
  if (!memory.read_polled(addr, &cpu, sizeof(cpu)) || cpu >= CPU_SETSIZE) return -1;
  return static_cast<int>(cpu);
}

}  // namespace spyglass::process
