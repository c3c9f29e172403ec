#include "process/elf.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "common/error.h"

namespace spyglass::process {

// Owns the descriptor and the libelf handle while the constructor indexes the file.
struct ElfFile::Impl {
  int fd = -1;
  Elf* elf = nullptr;
  ~Impl() {
    if (elf) elf_end(elf);
    if (fd >= 0) close(fd);
  }
};

namespace {

// .rodata beyond this is not searched: version strings sit in the first megabytes.
constexpr uint64_t kMaxRodataBytes = 64ull << 20;
constexpr size_t kMaxReadVaddrBytes = 64ull << 20;
constexpr uint64_t kMaxSymbols = 16ull << 20;

bool is_printable(uint8_t byte) {
  return byte >= 0x20 && byte < 0x7f;
}
bool is_word_byte(uint8_t byte) {
  return std::isalnum(byte) || byte == '.' || byte == '_';
}

}  // namespace

ElfFile::ElfFile(const std::string& path) : path_(path) {
  auto fail = [&](const std::string& reason) -> void {
    throw Error(ErrorKind::kIo, fmt::format("cannot read ELF file {}: {}", path_, reason));
  };
  auto elf_reason = [] {
    const char* message = elf_errmsg(-1);
    return std::string(message ? message : "invalid ELF data");
  };

  if (elf_version(EV_CURRENT) == EV_NONE) fail("libelf is out of date");
  Impl impl;
  impl.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (impl.fd < 0) fail(std::strerror(errno));
  impl.elf = elf_begin(impl.fd, ELF_C_READ_MMAP, nullptr);
  if (!impl.elf) fail(elf_reason());
  if (elf_kind(impl.elf) != ELF_K_ELF) fail("not an ELF file");
  Elf* elf = impl.elf;

  size_t section_names = 0;
  if (elf_getshdrstrndx(elf, &section_names) != 0) fail(elf_reason());

  // Sections: record all by name; index symbol tables; keep .rodata for find_strings.
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(elf, scn)) != nullptr) {
    GElf_Shdr header;
    if (!gelf_getshdr(scn, &header)) continue;
    const char* name = elf_strptr(elf, section_names, header.sh_name);
    if (name && *name) sections_.push_back({name, ElfSection{header.sh_addr, header.sh_size}});

    if (header.sh_type == SHT_SYMTAB || header.sh_type == SHT_DYNSYM) {
      Elf_Data* data = elf_getdata(scn, nullptr);
      if (!data || header.sh_entsize == 0) continue;
      uint64_t count = std::min<uint64_t>(data->d_size / header.sh_entsize, kMaxSymbols);
      for (uint64_t i = 0; i < count; ++i) {
        GElf_Sym symbol;
        if (!gelf_getsym(data, static_cast<int>(i), &symbol)) break;
        if (symbol.st_shndx == SHN_UNDEF || symbol.st_name == 0) continue;
        int type = GELF_ST_TYPE(symbol.st_info);
        if (type == STT_SECTION || type == STT_FILE) continue;
        const char* symbol_name = elf_strptr(elf, header.sh_link, symbol.st_name);
        if (!symbol_name || !*symbol_name) continue;
        symbols_.push_back({symbol_name, ElfSymbol{symbol.st_value, symbol.st_size}});
      }
    } else if (header.sh_type == SHT_PROGBITS && name && std::string_view(name) == ".rodata" &&
               rodata_.empty()) {
      Elf_Data* data = elf_getdata(scn, nullptr);
      if (data && data->d_buf) {
        size_t size = std::min<uint64_t>(data->d_size, kMaxRodataBytes);
        const auto* bytes = static_cast<const uint8_t*>(data->d_buf);
        rodata_.assign(bytes, bytes + size);
      }
    }
  }
  // One entry per name; stable so .dynsym (usually first in the file) wins over .symtab.
  std::stable_sort(symbols_.begin(), symbols_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  symbols_.erase(std::unique(symbols_.begin(), symbols_.end(),
                             [](const auto& a, const auto& b) { return a.first == b.first; }),
                 symbols_.end());
  std::stable_sort(sections_.begin(), sections_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  size_t program_headers = 0;
  if (elf_getphdrnum(elf, &program_headers) != 0) program_headers = 0;
  bool have_load = false;
  for (size_t i = 0; i < program_headers; ++i) {
    GElf_Phdr header;
    if (!gelf_getphdr(elf, static_cast<int>(i), &header) || header.p_type != PT_LOAD) continue;
    segments_.push_back({header.p_vaddr, header.p_offset, header.p_filesz});
    if ((header.p_flags & PF_W) != 0 && header.p_vaddr + header.p_memsz > writable_end_ &&
        header.p_memsz <= UINT64_MAX - header.p_vaddr) {
      writable_end_ = header.p_vaddr + header.p_memsz;
    }
    uint64_t aligned = header.p_vaddr;
    if (header.p_align > 1 && (header.p_align & (header.p_align - 1)) == 0) {
      aligned &= ~(header.p_align - 1);
    }
    if (!have_load || aligned < first_load_vaddr_) first_load_vaddr_ = aligned;
    have_load = true;
  }
}

std::optional<ElfSymbol> ElfFile::symbol(const std::string& name) const {
  auto it =
      std::lower_bound(symbols_.begin(), symbols_.end(), name,
                       [](const auto& entry, const std::string& key) { return entry.first < key; });
  if (it == symbols_.end() || it->first != name) return std::nullopt;
  return it->second;
}

std::optional<ElfSection> ElfFile::section(const std::string& name) const {
  auto it =
      std::lower_bound(sections_.begin(), sections_.end(), name,
                       [](const auto& entry, const std::string& key) { return entry.first < key; });
  if (it == sections_.end() || it->first != name) return std::nullopt;
  return it->second;
}

std::optional<std::vector<uint8_t>> ElfFile::read_vaddr(uint64_t vaddr, size_t size) const {
  if (size > kMaxReadVaddrBytes) return std::nullopt;
  for (const Segment& segment : segments_) {
    if (vaddr < segment.vaddr || vaddr - segment.vaddr > segment.filesz ||
        size > segment.filesz - (vaddr - segment.vaddr)) {
      continue;
    }
    uint64_t offset = segment.offset + (vaddr - segment.vaddr);
    if (offset < segment.offset || offset > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::vector<uint8_t> bytes(size);
    size_t done = 0;
    while (done < size) {
      ssize_t got = pread(fd, bytes.data() + done, size - done, static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;  // a truncated file: the segment claims more than is there
      done += static_cast<size_t>(got);
    }
    close(fd);
    if (done != size) return std::nullopt;
    return bytes;
  }
  return std::nullopt;
}

std::vector<std::string> ElfFile::find_strings(const std::string& prefix, size_t min_len,
                                               size_t max_results) const {
  std::vector<std::string> found;
  std::string_view data(reinterpret_cast<const char*>(rodata_.data()), rodata_.size());
  size_t pos = 0;
  while (found.size() < max_results && pos < data.size()) {
    size_t hit = prefix.empty() ? pos : data.find(prefix, pos);
    if (hit == std::string_view::npos) break;
    size_t end = hit;
    while (end < data.size() && is_printable(static_cast<uint8_t>(data[end]))) ++end;
    // A string starts after a non-printable byte, or at a word boundary: linkers merge a string
    // into the tail of a longer one (pyenv's libpython3.10 keeps "3.10.13" only as the end of
    // ".../versions/3.10.13").
    bool at_start = hit == 0 || !is_word_byte(static_cast<uint8_t>(data[hit - 1]));
    if (!at_start) {
      pos = hit + 1;
      continue;
    }
    if (end - hit >= std::max<size_t>(min_len, 1) && end - hit >= prefix.size()) {
      found.emplace_back(data.substr(hit, end - hit));
    }
    pos = std::max(end, hit + 1);
  }
  return found;
}

}  // namespace spyglass::process
