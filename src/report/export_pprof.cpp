// pprof: a gzip-compressed perftools.profiles.Profile message (github.com/google/pprof,
// proto/profile.proto), encoded by hand: the message is small and flat, and this keeps protobuf
// out of the build.
#include <zlib.h>

#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "report/export.h"
#include "report/profile_view.h"

namespace spyglass::report {

using sampling::FrameId;
using sampling::FrameInfo;
using sampling::StackId;

namespace {

// Field numbers of profile.proto.
namespace field {
constexpr int kProfileSampleType = 1, kProfileSample = 2, kProfileMapping = 3, kProfileLocation = 4,
              kProfileFunction = 5, kProfileStringTable = 6, kProfileTimeNanos = 9,
              kProfileDurationNanos = 10, kProfilePeriodType = 11, kProfilePeriod = 12,
              kProfileComment = 13, kProfileDefaultSampleType = 14;
constexpr int kValueTypeType = 1, kValueTypeUnit = 2;
constexpr int kSampleLocationId = 1, kSampleValue = 2, kSampleLabel = 3;
constexpr int kLabelKey = 1, kLabelStr = 2, kLabelNum = 3;
constexpr int kMappingId = 1, kMappingFilename = 5, kMappingHasFunctions = 7,
              kMappingHasFilenames = 8, kMappingHasLineNumbers = 9;
constexpr int kLocationId = 1, kLocationMappingId = 2, kLocationLine = 4;
constexpr int kLineFunctionId = 1, kLineLine = 2;
constexpr int kFunctionId = 1, kFunctionName = 2, kFunctionSystemName = 3, kFunctionFilename = 4,
              kFunctionStartLine = 5;
}  // namespace field

constexpr int kWireVarint = 0;
constexpr int kWireLengthDelimited = 2;

// Protocol buffers wire format: varints and length-delimited fields, nothing more is needed.
class ProtoWriter {
 public:
  void varint(uint64_t value) {
    while (value >= 0x80) {
      bytes_.push_back(static_cast<char>((value & 0x7F) | 0x80));
      value >>= 7;
    }
    bytes_.push_back(static_cast<char>(value));
  }
  void tag(int field_number, int wire_type) {
    varint(static_cast<uint64_t>(field_number) << 3 | static_cast<uint64_t>(wire_type));
  }
  // int64/uint64/bool; zero is the default and is left out, as proto3 encoders do.
  void int_field(int field_number, int64_t value) {
    if (value == 0) return;
    tag(field_number, kWireVarint);
    varint(static_cast<uint64_t>(value));
  }
  void bytes_field(int field_number, std::string_view data) {
    tag(field_number, kWireLengthDelimited);
    varint(data.size());
    bytes_.append(data);
  }
  void message_field(int field_number, const ProtoWriter& message) {
    bytes_field(field_number, message.bytes_);
  }
  // Repeated scalars, packed (the proto3 default).
  void packed_field(int field_number, const std::vector<uint64_t>& values) {
    if (values.empty()) return;
    ProtoWriter inner;
    for (uint64_t v : values) inner.varint(v);
    bytes_field(field_number, inner.bytes_);
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

class StringTable {
 public:
  StringTable() { intern(""); }  // index 0 is always the empty string
  int64_t intern(const std::string& text) {
    auto [it, added] = index_.emplace(text, static_cast<int64_t>(strings_.size()));
    if (added) strings_.push_back(text);
    return it->second;
  }
  const std::vector<std::string>& strings() const { return strings_; }

 private:
  std::vector<std::string> strings_;
  std::unordered_map<std::string, int64_t> index_;
};

ProtoWriter value_type(StringTable& strings, const std::string& type, const std::string& unit) {
  ProtoWriter w;
  w.int_field(field::kValueTypeType, strings.intern(type));
  w.int_field(field::kValueTypeUnit, strings.intern(unit));
  return w;
}

std::string gzip(const std::string& data) {
  z_stream stream{};
  // 15 window bits + 16: a gzip header and trailer rather than zlib's.
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    throw std::runtime_error("pprof: zlib could not start compressing");
  }
  std::string out(deflateBound(&stream, data.size()) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  int status = deflate(&stream, Z_FINISH);
  deflateEnd(&stream);
  if (status != Z_STREAM_END) throw std::runtime_error("pprof: zlib compression failed");
  out.resize(stream.total_out);
  return out;
}

}  // namespace

void write_pprof(const sampling::Profile& profile, const ExportOptions& options,
                 std::ostream& out) {
  const detail::ProfileView view = detail::make_view(profile, options.merge_lines);
  StringTable strings;
  ProtoWriter message;
  const std::string time_type = profile.run.mode == "cpu" ? "cpu" : "wall";

  message.message_field(field::kProfileSampleType, value_type(strings, "samples", "count"));
  message.message_field(field::kProfileSampleType, value_type(strings, time_type, "nanoseconds"));

  // A location per shown frame (id = frame + 1); a function per (name, file, first line).
  const uint64_t no_frames_location = view.frames.size() + 1;
  const int64_t thread_key = strings.intern("thread");
  const int64_t thread_id_key = strings.intern("thread_id");
  bool needs_no_frames_location = false;
  for (size_t t = 0; t < view.thread_weights.size() && t < profile.threads.size(); ++t) {
    const auto& thread = profile.threads[t];
    const int64_t thread_name = strings.intern(
        thread.name.empty() ? "thread " + std::to_string(thread.native_id) : thread.name);
    for (const auto& [stack, weight] : view.thread_weights[t]) {
      std::vector<uint64_t> locations;  // leaf first
      for (StackId id = stack; id != sampling::kRootStack; id = view.stacks.parent(id)) {
        locations.push_back(static_cast<uint64_t>(view.stacks.frame(id)) + 1);
      }
      if (locations.empty()) {
        locations.push_back(no_frames_location);
        needs_no_frames_location = true;
      }
      ProtoWriter sample;
      sample.packed_field(field::kSampleLocationId, locations);
      sample.packed_field(field::kSampleValue,
                          {weight.samples, static_cast<uint64_t>(
                                               std::llround(std::max(0.0, weight.seconds) * 1e9))});
      ProtoWriter name_label;
      name_label.int_field(field::kLabelKey, thread_key);
      name_label.int_field(field::kLabelStr, thread_name);
      sample.message_field(field::kSampleLabel, name_label);
      ProtoWriter id_label;
      id_label.int_field(field::kLabelKey, thread_id_key);
      id_label.int_field(field::kLabelNum, thread.native_id);
      sample.message_field(field::kSampleLabel, id_label);
      message.message_field(field::kProfileSample, sample);
    }
  }

  ProtoWriter mapping;
  mapping.int_field(field::kMappingId, 1);
  mapping.int_field(field::kMappingFilename, strings.intern("python"));
  mapping.int_field(field::kMappingHasFunctions, 1);
  mapping.int_field(field::kMappingHasFilenames, 1);
  mapping.int_field(field::kMappingHasLineNumbers, 1);
  message.message_field(field::kProfileMapping, mapping);

  std::map<std::tuple<std::string, std::string, int>, uint64_t> function_ids;
  std::vector<ProtoWriter> functions;
  auto function_id = [&](const FrameInfo& frame) {
    auto key = std::make_tuple(frame.function, frame.file, frame.firstlineno);
    auto it = function_ids.find(key);
    if (it != function_ids.end()) return it->second;
    uint64_t id = functions.size() + 1;
    ProtoWriter fn;
    fn.int_field(field::kFunctionId, static_cast<int64_t>(id));
    int64_t name = strings.intern(frame.function.empty() ? "<unknown>" : frame.function);
    fn.int_field(field::kFunctionName, name);
    fn.int_field(field::kFunctionSystemName, name);
    fn.int_field(field::kFunctionFilename, strings.intern(frame.file));
    fn.int_field(field::kFunctionStartLine, frame.firstlineno);
    functions.push_back(std::move(fn));
    function_ids.emplace(key, id);
    return id;
  };
  auto add_location = [&](uint64_t id, const FrameInfo& frame) {
    ProtoWriter line;
    line.int_field(field::kLineFunctionId, static_cast<int64_t>(function_id(frame)));
    line.int_field(field::kLineLine, frame.line > 0 ? frame.line : frame.firstlineno);
    ProtoWriter location;
    location.int_field(field::kLocationId, static_cast<int64_t>(id));
    location.int_field(field::kLocationMappingId, 1);
    location.message_field(field::kLocationLine, line);
    message.message_field(field::kProfileLocation, location);
  };
  for (FrameId id = 0; id < view.frames.size(); ++id) add_location(id + 1, view.frames.get(id));
  if (needs_no_frames_location) {
    FrameInfo none;
    none.function = "(no Python frames)";
    add_location(no_frames_location, none);
  }
  for (const ProtoWriter& fn : functions) message.message_field(field::kProfileFunction, fn);

  message.int_field(field::kProfileTimeNanos,
                    static_cast<int64_t>(std::llround(profile.run.start_unix_time * 1e9)));
  message.int_field(field::kProfileDurationNanos,
                    static_cast<int64_t>(std::llround(profile.run.duration_seconds * 1e9)));
  message.message_field(field::kProfilePeriodType, value_type(strings, time_type, "nanoseconds"));
  if (profile.run.rate_hz > 0) {
    message.int_field(field::kProfilePeriod,
                      static_cast<int64_t>(std::llround(1e9 / profile.run.rate_hz)));
  }
  const std::string comment = "spyglass" + (options.title.empty() ? "" : ": " + options.title);
  message.packed_field(field::kProfileComment, {static_cast<uint64_t>(strings.intern(comment))});
  message.int_field(field::kProfileDefaultSampleType, strings.intern(time_type));
  // The string table goes last: every string is known by now.
  for (const std::string& text : strings.strings()) {
    message.bytes_field(field::kProfileStringTable, text);
  }

  const std::string compressed = gzip(message.bytes());
  out.write(compressed.data(), static_cast<std::streamsize>(compressed.size()));
}

}  // namespace spyglass::report
