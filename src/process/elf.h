// Symbol lookup in ELF files (.dynsym and .symtab), through libelf.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace spyglass::process {

struct ElfSymbol {
  uint64_t value = 0;  // st_value: link-time virtual address
  uint64_t size = 0;
};

struct ElfSection {
  uint64_t addr = 0;  // sh_addr
  uint64_t size = 0;
};

class ElfFile {
 public:
  // Opens and indexes the file. Throws Error(kIo) when it is not a readable ELF file.
  explicit ElfFile(const std::string& path);
  // A defined symbol (undefined references are ignored), from .dynsym or .symtab.
  std::optional<ElfSymbol> symbol(const std::string& name) const;
  std::optional<ElfSection> section(const std::string& name) const;
  // The lowest PT_LOAD p_vaddr rounded down to its alignment; with the address of the mapping
  // of file offset 0 it gives the load bias.
  uint64_t first_load_vaddr() const { return first_load_vaddr_; }
  // The end (p_vaddr + p_memsz) of the highest writable PT_LOAD segment, 0 when none: the
  // rest of its last page is mapped, zero, and used by nothing the file defines.
  uint64_t writable_end() const { return writable_end_; }
  // Bytes of the file at virtual address `vaddr` (from PT_LOAD segments with file data).
  std::optional<std::vector<uint8_t>> read_vaddr(uint64_t vaddr, size_t size) const;
  // All printable strings of at least `min_len` in read-only data starting with `prefix`;
  // used to find a version string in binaries without Py_Version. A string may also start
  // inside a longer one after a byte that is not alphanumeric, '.' or '_' (linkers merge
  // "3.10.13" into the tail of ".../versions/3.10.13"); it runs to the first non-printable byte.
  // Only the first 64 MiB of .rodata are searched.
  std::vector<std::string> find_strings(const std::string& prefix, size_t min_len,
                                        size_t max_results) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  struct Impl;
  std::vector<std::pair<std::string, ElfSymbol>> symbols_;  // sorted by name
  std::vector<std::pair<std::string, ElfSection>> sections_;
  struct Segment {
    uint64_t vaddr, offset, filesz;
  };
  std::vector<Segment> segments_;
  uint64_t first_load_vaddr_ = 0;
  uint64_t writable_end_ = 0;
  std::vector<uint8_t> rodata_;  // .rodata contents, for find_strings
};

}  // namespace spyglass::process
