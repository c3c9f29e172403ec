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
                         {"pid", target.pid()},
                         {"threads", stacks.size()}};
  process::save_snapshot(recording.snapshot(), path, meta.dump());
}

WalkerConfig config_from_metadata(process::MemoryReader& memory, const std::string& metadata) {
  nlohmann::json meta = nlohmann::json::parse(metadata, nullptr, false);
  if (meta.is_discarded() || !meta.is_object() ||
      meta.value("format", "") != "spyglass-capture-1") {
    throw Error(ErrorKind::kCorrupt, "not a spyglass capture");
  }
  try {
    WalkerConfig config;
    config.runtime_addr = meta.at("runtime_addr").get<uint64_t>();
    config.code_type = meta.at("code_type").get<uint64_t>();
    config.unicode_type = meta.at("unicode_type").get<uint64_t>();
    config.bytes_type = meta.at("bytes_type").get<uint64_t>();
    const auto v = PythonVersion::from_hex(meta.at("version_hex").get<uint64_t>());
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
