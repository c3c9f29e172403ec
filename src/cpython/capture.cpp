#include "cpython/capture.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace spyglass::cpython {

void capture_target(Target& target, const std::string& path) {
  process::RecordingMemory recording(target.memory());
  const RuntimeLocation& rt = target.runtime();
  if (reads_debug_offsets(rt.layout.version)) {
    layout_from_debug_offsets(recording, rt.runtime_addr);
  }
  WalkerConfig config = target.walker().config();
  StackWalker walker(recording, config);
  std::vector<ThreadStack> stacks;
  walker.walk(stacks);
  walker.code_cache().clear();
  walker.walk(stacks);
  nlohmann::json meta = {{"format", "spyglass-capture-1"},
                         {"python", rt.layout.version.str()},
                         {"version_hex", rt.layout.version.hex},
                         {"runtime_addr", rt.runtime_addr},
                         {"code_type", rt.code_type},
                         {"unicode_type", rt.unicode_type},
                         {"bytes_type", rt.bytes_type},
                         {"code_counter", rt.code_counter},
                         {"pid", target.pid()},
                         {"threads", stacks.size()}};
  process::save_snapshot(recording.snapshot(), path, meta.dump());
}

namespace {

// An address or number of the metadata: an unsigned integer, nothing else. (nlohmann's
// get<uint64_t>() converts a float such as 5e84 too, which is undefined behaviour: found by
// the fuzzer.)
uint64_t unsigned_field(const nlohmann::json& meta, const char* key) {
  const nlohmann::json& value = meta.at(key);
  if (!value.is_number_unsigned() && !(value.is_number_integer() && value.get<int64_t>() >= 0)) {
    throw Error(ErrorKind::kCorrupt,
                fmt::format("bad capture metadata: {} is not an unsigned integer", key));
  }
  return value.get<uint64_t>();
}

}  // namespace

WalkerConfig config_from_metadata(process::MemoryReader& memory, const std::string& metadata) {
  nlohmann::json meta = nlohmann::json::parse(metadata, nullptr, false);
  if (meta.is_discarded() || !meta.is_object() ||
      meta.value("format", "") != "spyglass-capture-1") {
    throw Error(ErrorKind::kCorrupt, "not a spyglass capture");
  }
  try {
    WalkerConfig config;
    config.runtime_addr = unsigned_field(meta, "runtime_addr");
    config.code_type = unsigned_field(meta, "code_type");
    config.unicode_type = unsigned_field(meta, "unicode_type");
    config.bytes_type = unsigned_field(meta, "bytes_type");
    // Captures made before it was recorded have none: their code objects are read each walk.
    if (meta.contains("code_counter"))
      config.code_counter_addr = unsigned_field(meta, "code_counter");
    const auto v = PythonVersion::from_hex(unsigned_field(meta, "version_hex"));
    config.layout = layout_for(memory, v, config.runtime_addr);
    return config;
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::kCorrupt, fmt::format("bad capture metadata: {}", e.what()));
  }
}

CapturedTarget load_captured(const std::string& path) {
  process::LoadedSnapshot loaded = process::load_snapshot(path);
  CapturedTarget captured;
  captured.memory = std::move(loaded.memory);
  captured.config = config_from_metadata(captured.memory, loaded.metadata);
  captured.python_version = captured.config.layout.version.str();
  return captured;
}

}  // namespace spyglass::cpython
