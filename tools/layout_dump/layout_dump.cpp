// Prints a spyglass CPython layout as JSON (flat: "thread.frame": 24), for tools/check_layouts.py:
//   spyglass_layout_dump --version 3.12               the builtin table of 3.8-3.12
//   spyglass_layout_dump --debug-offsets FILE ADDR    the layout read from a copy of a 3.13+
//                                                     _PyRuntime (FILE) taken at address ADDR
#include <fmt/format.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cpython/layout.h"
#include "common/error.h"
#include "process/memory.h"

namespace {

using spyglass::cpython::Layout;

// Target memory that is one copied block at its original address.
class CopiedMemory : public spyglass::process::MemoryReader {
 public:
  CopiedMemory(uint64_t addr, std::vector<uint8_t> bytes) : addr_(addr), bytes_(std::move(bytes)) {}
  bool read(uint64_t addr, void* out, size_t size) override {
    if (addr < addr_ || addr - addr_ > bytes_.size() || size > bytes_.size() - (addr - addr_)) {
      return false;
    }
    std::memcpy(out, bytes_.data() + (addr - addr_), size);
    return true;
  }

 private:
  uint64_t addr_;
  std::vector<uint8_t> bytes_;
};

const char* line_table_name(spyglass::cpython::LineTableFormat format) {
  switch (format) {
    case spyglass::cpython::LineTableFormat::kLnotab:
      return "lnotab";
    case spyglass::cpython::LineTableFormat::kLinetable310:
      return "linetable310";
    case spyglass::cpython::LineTableFormat::kLocations:
      return "locations";
  }
  return "unknown";
}

// The layout's description and every field the spec names, flat ("thread.frame": 24).
nlohmann::json to_json(const Layout& l) {
  nlohmann::json out = {
      {"version", l.version.str()},
      {"frame_model", l.frame_model == spyglass::cpython::FrameModel::kFrameObject
                          ? "frame_object"
                          : "interpreter_frame"},
      {"line_table", line_table_name(l.line_table)},
      {"free_threaded", l.free_threaded},
  };
  for (const auto& field : spyglass::cpython::layout_fields(l)) out[field.name] = field.value;
  return out;
}

int usage() {
  std::cerr << "usage: spyglass_layout_dump --version 3.X | --debug-offsets FILE ADDR\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() == 2 && args[0] == "--version") {
      spyglass::cpython::PythonVersion version;
      if (std::sscanf(args[1].c_str(), "%d.%d", &version.major, &version.minor) != 2) {
        return usage();
      }
      const auto layout = spyglass::cpython::builtin_layout(version);
      if (!layout) {
        std::cerr << "no builtin layout for " << args[1] << "\n";
        return 1;
      }
      std::cout << to_json(*layout).dump(1) << "\n";
      return 0;
    }
    if (args.size() == 3 && args[0] == "--debug-offsets") {
      std::ifstream in(args[1], std::ios::binary);
      if (!in) {
        std::cerr << "cannot open " << args[1] << "\n";
        return 1;
      }
      std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                 std::istreambuf_iterator<char>());
      const uint64_t addr = std::stoull(args[2], nullptr, 0);
      CopiedMemory memory(addr, std::move(bytes));
      std::cout << to_json(spyglass::cpython::layout_from_debug_offsets(memory, addr)).dump(1)
                << "\n";
      return 0;
    }
    return usage();
  } catch (const spyglass::Error& error) {
    std::cerr << "spyglass_layout_dump: " << error.what() << "\n";
    return error.exit_code();
  } catch (const std::exception& error) {
    std::cerr << "spyglass_layout_dump: " << error.what() << "\n";
    return 1;
  }
}
