#include "cpython/objects.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "cpython/code_cache.h"
#include "cpython/remote_pointer.h"
#include "process/memory.h"

namespace spyglass::cpython {
namespace {

// Type flags are ABI (object.h): the same bits in every version that has them.
constexpr uint64_t kFlagInlineValues = 1ull << 2;  // Py_TPFLAGS_INLINE_VALUES (3.13+)
constexpr uint64_t kFlagManagedDict = 1ull << 4;   // Py_TPFLAGS_MANAGED_DICT (3.11+)
constexpr uint64_t kFlagHeapType = 1ull << 9;      // Py_TPFLAGS_HEAPTYPE
constexpr int kFastHidden = 0x10;  // co_localspluskinds (3.11+): comprehension-inlined
constexpr int kFastCell = 0x40, kFastFree = 0x80;
// Bounds on what a damaged or hostile target could make us read.
constexpr int64_t kMaxEntries = 1 << 16;  // sys.modules of a large program: thousands
constexpr int64_t kMaxLocals = 4096;

std::string python_quoted(const std::string& text, char quote) {
  std::string out(1, quote);
  for (char c : text) {
    if (c == '\\' || c == quote) {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out + quote;
}

}  // namespace

ObjectReader::ObjectReader(process::MemoryReader& memory, const Layout& layout, CodeCache& codes)
    : memory_(memory),
      layout_(layout),
      codes_(codes),
      objects_(layout.objects),
      minor_(layout.version.minor) {}

bool ObjectReader::read_u64(uint64_t addr, uint64_t& out) {
  return plausible_pointer(addr) && memory_.read_value(addr, out);
}

std::string ObjectReader::type_name(uint64_t addr) {
  uint64_t type = 0;
  if (!read_u64(addr + layout_.ob_type, type)) return {};
  return type_name_of_type(type);
}

std::string ObjectReader::type_name_of_type(uint64_t type) {
  uint64_t name = 0;
  if (!read_u64(type + layout_.type_name, name) || name < 4096) return {};
  char buf[65] = {};
  // A name near the end of a mapping: read less.
  for (size_t len : {size_t{64}, size_t{24}, size_t{8}}) {
    if (memory_.read(name, buf, len)) {
      buf[len] = '\0';
      std::string out(buf, strnlen(buf, len));
      bool printable = !out.empty() && std::all_of(out.begin(), out.end(), [](char c) {
        return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
      });
      return printable ? out : std::string();
    }
  }
  return {};
}

std::string ObjectReader::int_repr(uint64_t addr) {
  int64_t ndigits = 0;
  bool negative = false;
  uint64_t word = 0;
  if (!memory_.read_value(addr + objects_.var_size, word)) return "<int>";
  if (minor_ >= 12) {  // lv_tag: digit count << 3, sign in the low bits (1 zero, 2 <0)
    ndigits = static_cast<int64_t>(word >> 3);
    negative = (word & 3) == 2;
    if ((word & 3) == 1) return "0";
  } else {
    int64_t size = static_cast<int64_t>(word);
    ndigits = size < 0 ? -size : size;
    negative = size < 0;
    if (size == 0) return "0";
  }
  if (ndigits > 2) return fmt::format("<int of {} digits>", ndigits);
  uint32_t digits[2] = {0, 0};
  if (!memory_.read(addr + objects_.long_digits, digits, static_cast<size_t>(ndigits) * 4))
    return "<int>";
  uint64_t value = digits[0] | (static_cast<uint64_t>(digits[1]) << 30);
  return fmt::format("{}{}", negative ? "-" : "", value);
}

std::string ObjectReader::repr(uint64_t addr, size_t max_len) {
  if (!plausible_pointer(addr)) return "<unreadable>";
  const std::string type = type_name(addr);
  if (type.empty()) return "<unreadable>";
  uint64_t word = 0;
  if (type == "NoneType") return "None";
  if (type == "bool") return int_repr(addr) == "0" ? "False" : "True";
  if (type == "int") return int_repr(addr);
  if (type == "float") {
    double value = 0;
    if (!memory_.read_value(addr + objects_.float_value, value)) return "<float>";
    return fmt::format("{}", value);
  }
  if (type == "str") {
    std::string text;
    if (!codes_.read_string(memory_, addr, text, max_len)) return "<str>";
    return python_quoted(text, '\'');
  }
  if (type == "bytes") {
    if (!memory_.read_value(addr + layout_.bytes.size, word) || word > (1ull << 40)) {
      return "<bytes>";
    }
    std::string raw(std::min<uint64_t>(word, max_len), '\0');
    if (!raw.empty() && !memory_.read(addr + layout_.bytes.data, raw.data(), raw.size())) {
      return "<bytes>";
    }
    return "b" + python_quoted(raw, '\'') + (word > max_len ? "..." : "");
  }
  if (type == "tuple" || type == "list" || type == "dict" || type == "set" || type == "frozenset") {
    // Sizes only: the items could be anything, and the dump stays one line per variable.
    uint64_t at = type == "dict" ? objects_.dict_used : objects_.var_size;
    if (type == "set" || type == "frozenset") at = objects_.set_used;
    if (memory_.read_value(addr + at, word) && word < (1ull << 40)) {
      return fmt::format("<{} of {} item{}>", type, word, word == 1 ? "" : "s");
    }
    return "<" + type + ">";
  }
  return fmt::format("<{} object at {:#x}>", type, addr);
}

uint64_t ObjectReader::local_object(const Frame& frame, size_t index) {
  if (!frame.frame_addr || !layout_.frame.localsplus) return 0;
  uint64_t value = 0;
  if (!memory_.read_value(frame.frame_addr + layout_.frame.localsplus + 8 * index, value)) return 0;
  if (layout_.frame.code_is_tagged) value &= ~uint64_t{3};  // 3.14+: a _PyStackRef
  return plausible_pointer(value) ? value : 0;
}

std::vector<LocalVariable> ObjectReader::locals(const Frame& frame, size_t max_count,
                                                size_t& more) {
  std::vector<LocalVariable> out;
  more = 0;
  if (!supported() || !frame.frame_addr) return out;
  // The names: co_varnames (3.8-3.10, plain locals only) or co_localsplusnames with their
  // kinds (3.11+: locals, cells and free variables, in slot order).
  uint64_t names = 0;
  uint64_t names_at = minor_ >= 11 ? objects_.code_localsplusnames : layout_.code.varnames;
  if (!names_at || !read_u64(frame.code_addr + names_at, names)) return out;
  uint64_t count = 0;
  if (!memory_.read_value(names + objects_.var_size, count) || static_cast<int64_t>(count) < 0 ||
      static_cast<int64_t>(count) > kMaxLocals) {
    return out;
  }
  std::vector<uint64_t> name_objects(count);
  if (count && !memory_.read(names + layout_.tuple_items, name_objects.data(), count * 8)) {
    return out;
  }
  std::vector<uint8_t> kinds(count, 0);
  if (minor_ >= 11) {
    uint64_t kinds_bytes = 0;
    if (!read_u64(frame.code_addr + objects_.code_localspluskinds, kinds_bytes) ||
        (count && !memory_.read(kinds_bytes + layout_.bytes.data, kinds.data(), count))) {
      return out;
    }
  }
  for (size_t i = 0; i < count; ++i) {
    if (kinds[i] & kFastHidden) continue;
    uint64_t value = local_object(frame, i);
    if (!value) continue;  // not assigned yet (or unreadable)
    if ((kinds[i] & (kFastCell | kFastFree)) && type_name(value) == "cell") {
      uint64_t inside = 0;
      if (!read_u64(value + objects_.cell_ref, inside) || !inside) continue;  // an empty cell
      value = inside;
    }
    if (out.size() >= max_count) {
      ++more;
      continue;
    }
    LocalVariable local;
    if (!codes_.read_string(memory_, name_objects[i], local.name, 64)) local.name = "?";
    local.value = repr(value);
    out.push_back(std::move(local));
  }
  return out;
}

uint64_t ObjectReader::lookup_in_keys(uint64_t keys, uint64_t values, const std::string& name) {
  int64_t nentries = 0;
  uint64_t entries = 0;
  size_t entry_size = 24, key_at = 8, value_at = 16;  // PyDictKeyEntry {hash, key, value}
  if (minor_ <= 10) {
    // dict-common.h: dk_refcnt, dk_size, dk_lookup, dk_usable, dk_nentries, dk_indices[].
    int64_t size = 0;
    if (!memory_.read_value(keys + 8, size) || !memory_.read_value(keys + 32, nentries)) return 0;
    if (size <= 0 || size > (1 << 20)) return 0;
    uint64_t index_bytes = size <= 0xff ? 1 : size <= 0xffff ? 2 : size <= 0xffffffffLL ? 4 : 8;
    entries = keys + 40 + static_cast<uint64_t>(size) * index_bytes;
  } else {
    // pycore_dict.h: dk_refcnt, dk_log2_size, dk_log2_index_bytes, dk_kind, dk_version,
    // dk_usable, dk_nentries (24), dk_indices (32).
    uint8_t head[3] = {};
    if (!memory_.read(keys + 8, head, sizeof(head)) || !memory_.read_value(keys + 24, nentries)) {
      return 0;
    }
    if (head[1] > 40 || head[2] > 2) return 0;
    entries = keys + 32 + (uint64_t{1} << head[1]);
    if (head[2] != 0) {  // unicode or split keys: PyDictUnicodeEntry {key, value}
      entry_size = 16;
      key_at = 0;
      value_at = 8;
    }
  }
  if (nentries <= 0 || nentries > kMaxEntries) return 0;
  std::vector<uint8_t> bytes(static_cast<size_t>(nentries) * entry_size);
  if (!memory_.read(entries, bytes.data(), bytes.size())) return 0;
  for (int64_t i = 0; i < nentries; ++i) {
    uint64_t key = 0;
    std::memcpy(&key, bytes.data() + i * entry_size + key_at, 8);
    std::string text;
    if (!key || !codes_.read_string(memory_, key, text, name.size() + 1) || text != name) continue;
    uint64_t value = 0;
    if (values) {
      if (!memory_.read_value(values + 8 * static_cast<uint64_t>(i), value)) return 0;
    } else {
      std::memcpy(&value, bytes.data() + i * entry_size + value_at, 8);
    }
    return plausible_pointer(value) ? value : 0;
  }
  return 0;
}

uint64_t ObjectReader::lookup_in_dict(uint64_t dict, const std::string& name) {
  if (type_name(dict) != "dict") return 0;
  uint64_t keys = 0, values = 0;
  if (!read_u64(dict + objects_.dict_keys, keys) ||
      !memory_.read_value(dict + objects_.dict_values, values)) {
    return 0;
  }
  // A split table keeps its values apart (3.13+: after an 8-byte header).
  if (values && minor_ >= 13) values += 8;
  return lookup_in_keys(keys, values, name);
}

uint64_t ObjectReader::attribute(uint64_t obj, const std::string& name) {
  uint64_t type = 0, flags = 0;
  if (!read_u64(obj + layout_.ob_type, type) ||
      !memory_.read_value(type + objects_.type_flags, flags)) {
    return 0;
  }
  if (minor_ >= 11 && (flags & kFlagManagedDict)) {
    uint64_t dict_or_values = 0;
    if (!memory_.read_value(obj - 24, dict_or_values)) return 0;
    uint64_t values = 0;
    if (minor_ == 11) {
      if (dict_or_values) return lookup_in_dict(dict_or_values, name);
      if (!memory_.read_value(obj - 32, values)) return 0;
    } else if (minor_ == 12) {
      if (!(dict_or_values & 1)) return dict_or_values ? lookup_in_dict(dict_or_values, name) : 0;
      values = dict_or_values + 1;
    } else {
      if (dict_or_values) return lookup_in_dict(dict_or_values, name);
      if (!(flags & kFlagInlineValues)) return 0;
      int64_t basic_size = 0;
      uint8_t valid = 0;
      if (!memory_.read_value(type + objects_.type_basicsize, basic_size) || basic_size <= 0 ||
          basic_size > (1 << 16)) {
        return 0;
      }
      values = obj + static_cast<uint64_t>(basic_size);
      if (!memory_.read_value(values + 3, valid) || !valid) return 0;  // PyDictValues.valid
      values += 8;
    }
    // The values of an instance share the keys of its class.
    uint64_t keys = 0;
    if (!(flags & kFlagHeapType) || !values ||
        !read_u64(type + objects_.heap_type_cached_keys, keys)) {
      return 0;
    }
    return lookup_in_keys(keys, values, name);
  }
  int64_t offset = 0;
  uint64_t dict = 0;
  if (!memory_.read_value(type + objects_.type_dictoffset, offset) || offset <= 0 ||
      offset > (1 << 16) || !read_u64(obj + static_cast<uint64_t>(offset), dict)) {
    return 0;
  }
  return lookup_in_dict(dict, name);
}

uint64_t ObjectReader::attribute_object(uint64_t obj, const std::string& name) {
  if (!supported() || !plausible_pointer(obj)) return 0;
  return attribute(obj, name);
}

uint64_t ObjectReader::dict_item(uint64_t dict, const std::string& key) {
  if (!supported() || !plausible_pointer(dict)) return 0;
  return lookup_in_dict(dict, key);
}

std::optional<std::string> ObjectReader::string_attribute(uint64_t obj, const std::string& name) {
  if (!supported() || !plausible_pointer(obj)) return std::nullopt;
  uint64_t value = attribute(obj, name);
  std::string text;
  if (!value || !codes_.read_string(memory_, value, text, 256)) return std::nullopt;
  return text;
}

}  // namespace spyglass::cpython
