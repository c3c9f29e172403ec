#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>

#include "process/elf.h"
#include "common/error.h"
#include "process/maps.h"

// Defined in this executable with external linkage and not exported (no -rdynamic), so it is
// in .symtab only.
extern "C" __attribute__((noinline, used)) int spyglass_elf_test_marker(int x) {
  return x * 3 + 1;
}
// A string only this binary holds, for find_strings.
extern "C" __attribute__((used)) const char spyglass_elf_test_string[] =
    "spyglass-marker-3.99.1 (a test string)";

namespace spyglass::process {
namespace {

namespace fs = std::filesystem;

std::string self_path() {
  return fs::canonical("/proc/self/exe").string();
}

std::string pyenv_root() {
  if (const char* root = std::getenv("PYENV_ROOT"); root && *root) return root;
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.pyenv";
  return "/root/.pyenv";
}

// pyenv's shared libpython3.X.so.1.0 files, by minor version.
std::vector<std::pair<int, std::string>> pyenv_libpythons() {
  std::vector<std::pair<int, std::string>> found;
  std::error_code error;
  fs::path versions = fs::path(pyenv_root()) / "versions";
  if (!fs::is_directory(versions, error)) return found;
  std::regex name(R"(libpython3\.(\d+)m?\.so\.1\.0)");
  for (const auto& version : fs::directory_iterator(versions, error)) {
    for (const auto& entry : fs::directory_iterator(version.path() / "lib", error)) {
      std::smatch match;
      std::string file = entry.path().filename().string();
      if (std::regex_match(file, match, name)) {
        found.emplace_back(std::stoi(match[1]), entry.path().string());
      }
    }
  }
  std::sort(found.begin(), found.end());
  return found;
}

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("spyglass_elf_test_" + std::to_string(getpid()))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name, const std::string& bytes) const {
    std::string path = (path_ / name).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
  }

 private:
  fs::path path_;
};

std::string version_prefix(int minor) {
  return "3." + std::to_string(minor) + ".";
}

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Opening must throw Error(kIo) or succeed; every query afterwards must not crash.
void open_and_query(const std::string& path) {
  try {
    ElfFile elf(path);
    (void)elf.symbol("main");
    (void)elf.symbol("_PyRuntime");
    (void)elf.section(".text");
    (void)elf.section(".rodata");
    (void)elf.read_vaddr(elf.first_load_vaddr(), 64);
    if (auto text = elf.section(".text")) (void)elf.read_vaddr(text->addr, 16);
    (void)elf.find_strings("3.", 3, 10);
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kIo);
    EXPECT_EQ(std::string(error.what()).rfind("cannot read ELF file " + path + ": ", 0), 0u)
        << error.what();
  }
}

TEST(ElfFile, FindsSymtabOnlySymbolOfThisExecutable) {
  ElfFile elf(self_path());
  ASSERT_TRUE(elf.section(".symtab").has_value()) << "the test binary is stripped";
  auto marker = elf.symbol("spyglass_elf_test_marker");
  ASSERT_TRUE(marker.has_value());
  EXPECT_GT(marker->size, 0u);

  // With the load bias from our own maps, the symbol gives the function's address.
  auto maps = read_maps(getpid());
  auto first = std::find_if(maps.begin(), maps.end(), [](const Mapping& m) {
    return m.path == self_path() && m.offset == 0;
  });
  ASSERT_NE(first, maps.end());
  uint64_t bias = first->start - elf.first_load_vaddr();
  EXPECT_EQ(bias + marker->value, reinterpret_cast<uint64_t>(&spyglass_elf_test_marker));

  // The file's bytes at the symbol are the function's code.
  auto code = elf.read_vaddr(marker->value, 8);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(std::memcmp(code->data(), reinterpret_cast<const void*>(&spyglass_elf_test_marker), 8),
            0);
  EXPECT_EQ(spyglass_elf_test_marker(2), 7);
}

TEST(ElfFile, IgnoresUndefinedSymbolsAndUnknownNames) {
  ElfFile elf(self_path());
  // Referenced by this binary (from the process library) but defined in glibc.
  EXPECT_FALSE(elf.symbol("process_vm_readv").has_value());
  EXPECT_FALSE(elf.symbol("no_such_symbol_anywhere").has_value());
  EXPECT_FALSE(elf.symbol("").has_value());
  EXPECT_FALSE(elf.section(".no_such_section").has_value());
  auto text = elf.section(".text");
  ASSERT_TRUE(text.has_value());
  EXPECT_GT(text->size, 0u);
  EXPECT_EQ(elf.path(), self_path());
}

TEST(ElfFile, ReadVaddrStaysInsideFileBackedSegments) {
  ElfFile elf(self_path());
  EXPECT_FALSE(elf.read_vaddr(0xdead00000000ull, 8).has_value());
  EXPECT_FALSE(elf.read_vaddr(~0ull - 3, 8).has_value());
  auto text = elf.section(".text");
  ASSERT_TRUE(text.has_value());
  EXPECT_FALSE(elf.read_vaddr(text->addr, 1ull << 40).has_value());
  auto empty = elf.read_vaddr(text->addr, 0);
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->empty());
  // .bss has no file data.
  if (auto bss = elf.section(".bss"); bss && bss->size >= 8) {
    EXPECT_FALSE(elf.read_vaddr(bss->addr + bss->size - 8, 8).has_value());
  }
}

// The prefixes are built at run time from reversed literals, so they are not themselves
// strings in this binary's .rodata.
std::string reversed(std::string text) {
  std::reverse(text.begin(), text.end());
  return text;
}

TEST(ElfFile, FindsStringsInRodata) {
  ElfFile elf(self_path());
  auto strings = elf.find_strings(reversed("-rekram-ssalgyps"), 10, 5);
  ASSERT_EQ(strings.size(), 1u);
  EXPECT_EQ(strings[0], spyglass_elf_test_string);
  // Inside the longer string, after a space or '-'; not after a letter or a digit.
  auto inner = elf.find_strings(reversed(" 1.99.3"), 5, 5);
  ASSERT_EQ(inner.size(), 1u);
  EXPECT_EQ(inner[0], reversed(")gnirts tset a( 1.99.3"));
  EXPECT_TRUE(elf.find_strings(reversed("99.3-rekra"), 3, 5).empty());
  EXPECT_TRUE(elf.find_strings(reversed("-rekram-ssalgyps"), 1000, 5).empty());  // min_len
  EXPECT_TRUE(elf.find_strings(reversed("-rekram-ssalgyps"), 1, 0).empty());
}

TEST(ElfFile, PyenvLibpythonHasPyRuntime) {
  auto libraries = pyenv_libpythons();
  if (libraries.empty()) GTEST_SKIP() << "no pyenv libpython3.X.so.1.0 under " << pyenv_root();
  int checked = 0;
  for (const auto& [minor, path] : libraries) {
    SCOPED_TRACE(path);
    ElfFile elf(path);
    EXPECT_EQ(elf.first_load_vaddr(), 0u);
    if (minor >= 7) {
      auto runtime = elf.symbol("_PyRuntime");
      ASSERT_TRUE(runtime.has_value());
      EXPECT_GT(runtime->size, 100u);
    }
    if (minor >= 11) {
      auto version = elf.symbol("Py_Version");
      ASSERT_TRUE(version.has_value());
      auto bytes = elf.read_vaddr(version->value, 4);
      ASSERT_TRUE(bytes.has_value());
      uint32_t hex = 0;
      std::memcpy(&hex, bytes->data(), 4);
      EXPECT_EQ(hex >> 24, 3u);
      EXPECT_EQ((hex >> 16) & 0xff, static_cast<uint32_t>(minor));
    }
    if (minor >= 13) {
      // _PyRuntime is in its own section and starts with the debug offsets' cookie.
      auto section = elf.section(".PyRuntime");
      auto runtime = elf.symbol("_PyRuntime");
      ASSERT_TRUE(section.has_value());
      EXPECT_EQ(section->addr, runtime->value);
      auto cookie = elf.read_vaddr(runtime->value, 8);
      ASSERT_TRUE(cookie.has_value());
      EXPECT_EQ(std::string(cookie->begin(), cookie->end()), "xdebugpy");
    }
    // The version string, as a fallback without Py_Version (suffix-merged by the linker).
    auto strings = elf.find_strings(version_prefix(minor), 4, 1000);
    EXPECT_FALSE(strings.empty());
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(ElfFile, DebianStaticPythonHasSymbolsOnlyInDynsym) {
  const std::string path = "/usr/bin/python3.11";
  std::error_code error;
  if (!fs::exists(path, error)) GTEST_SKIP() << path << " is not installed";
  ElfFile elf(fs::canonical(path).string());
  if (elf.section(".symtab")) GTEST_SKIP() << path << " is not stripped here";
  ASSERT_TRUE(elf.section(".dynsym").has_value());
  auto runtime = elf.symbol("_PyRuntime");
  ASSERT_TRUE(runtime.has_value());
  EXPECT_GT(runtime->size, 100u);
  auto version = elf.symbol("Py_Version");
  ASSERT_TRUE(version.has_value());
  auto bytes = elf.read_vaddr(version->value, 4);
  ASSERT_TRUE(bytes.has_value());
  uint32_t hex = 0;
  std::memcpy(&hex, bytes->data(), 4);
  EXPECT_EQ(hex >> 16, 0x030bu);
  EXPECT_EQ(elf.first_load_vaddr(), 0x400000u);  // not position-independent
}

TEST(ElfFile, ErrorsNameThePathAndTheReason) {
  TempDir dir;
  struct Case {
    std::string path;
    std::string reason;
  };
  std::vector<Case> cases = {
      {"/no/such/file.so", "No such file or directory"},
      {dir.file("empty", ""), ""},
      {dir.file("text", "#!/bin/sh\necho hello\n"), ""},
      {dir.file("magic_only",
                "\x7f"
                "ELF"),
       ""},
  };
  for (const auto& [path, reason] : cases) {
    try {
      ElfFile elf(path);
      ADD_FAILURE() << "expected an Error for " << path;
    } catch (const Error& error) {
      EXPECT_EQ(error.kind(), ErrorKind::kIo);
      std::string message = error.what();
      EXPECT_EQ(message.rfind("cannot read ELF file " + path + ": ", 0), 0u) << message;
      EXPECT_NE(message.find(reason), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  }
}

// Truncated and corrupted copies of real binaries: an Error or a usable object, never a crash.
TEST(ElfFile, SurvivesTruncatedFiles) {
  TempDir dir;
  for (const std::string& source : {std::string("/bin/true"), self_path()}) {
    std::error_code error;
    if (!fs::exists(source, error)) continue;
    SCOPED_TRACE(source);
    const std::string bytes = read_whole(source);
    ASSERT_GT(bytes.size(), 1000u);
    std::vector<size_t> sizes = {1, 4, 16, 52, 63, 64, 65, 100, 200, 1000, 4096};
    for (size_t step = 1; step < 40; ++step) sizes.push_back(bytes.size() * step / 40);
    for (size_t cut = 1; cut <= 200; cut += 7) sizes.push_back(bytes.size() - cut);
    for (size_t size : sizes) {
      if (size >= bytes.size()) continue;
      open_and_query(dir.file("truncated", bytes.substr(0, size)));
    }
  }
}

TEST(ElfFile, SurvivesCorruptedHeaders) {
  const std::string source = "/bin/true";
  std::error_code error;
  if (!fs::exists(source, error)) GTEST_SKIP() << source << " is missing";
  TempDir dir;
  const std::string bytes = read_whole(source);
  // Section header table offset (e_shoff) in a 64-bit ELF header.
  uint64_t shoff = 0;
  std::memcpy(&shoff, bytes.data() + 0x28, 8);
  ASSERT_LT(shoff, bytes.size());
  std::mt19937 random(12345);  // fixed seed: the same corruptions every run
  for (int round = 0; round < 300; ++round) {
    std::string corrupt = bytes;
    int flips = 1 + static_cast<int>(random() % 8);
    for (int i = 0; i < flips; ++i) {
      // Header and program headers, section headers, or anywhere.
      size_t region = random() % 3;
      size_t at = region == 0   ? random() % 512
                  : region == 1 ? shoff + random() % (bytes.size() - shoff)
                                : random() % bytes.size();
      corrupt[at] = static_cast<char>(random());
    }
    open_and_query(dir.file("corrupt", corrupt));
  }
}

}  // namespace
}  // namespace spyglass::process
