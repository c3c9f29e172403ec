#include "cpython/code_cache.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "cpython/linetable.h"
#include "cpython/remote_pointer.h"
#include "process/memory.h"

namespace spyglass::cpython {
namespace {

template <typename T>
T load(std::span<const uint8_t> bytes, uint64_t offset) {
  T value{};
  if (offset + sizeof(T) <= bytes.size()) std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF), as nlohmann::json requires of every string it writes.
bool valid_utf8(const std::string& text) {
  size_t i = 0;
  while (i < text.size()) {
    auto lead = static_cast<unsigned char>(text[i]);
    size_t extra = lead < 0x80                    ? 0
                   : lead >= 0xC2 && lead <= 0xDF ? 1
                   : lead >= 0xE0 && lead <= 0xEF ? 2
                   : lead >= 0xF0 && lead <= 0xF4 ? 3
                                                  : 4;
    if (extra == 4 || extra > text.size() - i - 1) return false;
    uint32_t cp = extra == 0 ? lead : lead & (0x3F >> extra);
    for (size_t k = 1; k <= extra; ++k) {
      auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (next & 0x3F);
    }
    if ((extra == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;  // never emit bad UTF-8
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

CodeCache::CodeCache(process::MemoryReader& memory, const Layout& layout, uint64_t code_type,
                     uint64_t unicode_type, uint64_t bytes_type)
    : memory_(memory),
      layout_(layout),
      code_type_(code_type),
      unicode_type_(unicode_type),
      bytes_type_(bytes_type) {
  const auto& c = layout.code;
  uint64_t end = std::max({layout.ob_type + 8, c.filename + 8, c.name + 8, c.qualname + 8,
                           c.linetable + 8, c.firstlineno + 4, c.flags + 4, c.framesize + 4,
                           c.stacksize + 4, c.nlocalsplus + 4, c.version + 4});
  header_size_ = static_cast<size_t>(end);
}

CodeIdentity CodeCache::identity(std::span<const uint8_t> header) const {
  const auto& c = layout_.code;
  CodeIdentity id;
  id.type = load<uint64_t>(header, layout_.ob_type);
  id.filename = load<uint64_t>(header, c.filename);
  id.name = load<uint64_t>(header, c.name);
  id.qualname = c.qualname ? load<uint64_t>(header, c.qualname) : 0;
  id.linetable = load<uint64_t>(header, c.linetable);
  id.firstlineno = load<int32_t>(header, c.firstlineno);
  return id;
}

void CodeCache::begin_walk(std::optional<uint32_t> code_counter) {
  if (code_counter && previous_counter_ && *code_counter < *previous_counter_) {
    ++counter_faults_;  // it only runs forward: this is not it
    code_counter.reset();
  }
  // A code object made during a walk, after its counter was read, shows a co_version past it
  // now and then; a wrong counter (offset, symbol) does so for most headers read.
  if (counter_faults_ >= kMaxCounterFaults && counter_faults_ * 8 > headers_read_)
    counter_off_ = true;
  if (!code_counter || *code_counter == 0 || counter_off_) {
    // No proof now, and none of the entries checked before holds once the counter is back:
    // a code object may have been made meanwhile without moving it (another interpreter's).
    if (previous_counter_) ++generation_;
    previous_counter_.reset();
    proof_now_ = proof_stamp_ = kUnproven;
    counter_now_ = 0;
    return;
  }
  counter_now_ = *code_counter;
  proof_now_ = proof_of(*code_counter);
  proof_stamp_ = previous_counter_ ? proof_of(*previous_counter_) : kUnproven;
  previous_counter_ = code_counter;
}

const CodeInfo* CodeCache::get(uint64_t addr) {
  if (proof_now_ != kUnproven) {
    if (Entry* cached = find(addr); cached && cached->proof == proof_now_) {
      ++proven_;
      last_ = Slot{addr, cached};
      return &cached->info;
    }
  }
  uint8_t copy[512];
  if (header_size_ > sizeof(copy) || !plausible_pointer(addr)) return nullptr;
  ++headers_read_;
  const uint8_t* header = memory_.view_or_read(addr, header_size_, copy);
  if (!header) return nullptr;
  return lookup(addr, std::span<const uint8_t>(header, header_size_));
}

CodeCache::Entry* CodeCache::find(uint64_t addr) {
  Slot& slot = slots_[(addr >> 4) * 0x9E3779B97F4A7C15ull >> 54];
  if (slot.addr == addr && slot.entry) return slot.entry;
  auto it = entries_.find(addr);
  if (it == entries_.end()) return nullptr;
  slot = Slot{addr, &it->second};
  return slot.entry;
}

void CodeCache::clear() {
  last_ = Slot{};
  entries_.clear();
  std::fill(slots_.begin(), slots_.end(), Slot{});
}

bool CodeCache::still_matches(const CodeIdentity& id, const uint8_t* header) const {
  // Field by field from the header bytes (header_size_ reaches every one): building a
  // CodeIdentity to compare costs a store-forwarding stall on every frame of every sample.
  auto u64 = [header](uint64_t offset) {
    uint64_t value;
    std::memcpy(&value, header + offset, sizeof value);
    return value;
  };
  const auto& c = layout_.code;
  int32_t firstlineno;
  std::memcpy(&firstlineno, header + c.firstlineno, sizeof firstlineno);
  return u64(c.name) == id.name && u64(c.filename) == id.filename &&
         u64(layout_.ob_type) == id.type && u64(c.linetable) == id.linetable &&
         (c.qualname ? u64(c.qualname) : 0) == id.qualname && firstlineno == id.firstlineno;
}

const CodeInfo* CodeCache::lookup(uint64_t addr, std::span<const uint8_t> header) {
  if (header.size() < header_size_) return nullptr;
  // A code object newer than the counter says the counter is not what numbers them, or that
  // it was made after the counter was read: either way, no proof. Counted as a fault only once
  // the header is known to be a code object's: a frame caught being set up or torn down points
  // at other memory, whose "co_version" is any word (the high half of a pointer, mostly), and
  // counting those turned a right counter off within 15 s at 10 kHz on the reference workload.
  const bool newer = layout_.code.version && counter_now_ &&
                     load<uint32_t>(header, layout_.code.version) >= counter_now_;
  const uint64_t stamp = newer ? kUnproven : proof_stamp_;
  if (Entry* cached = find(addr); cached && still_matches(cached->identity, header.data())) {
    if (newer) ++counter_faults_;
    cached->proof = stamp;
    last_ = Slot{addr, cached};
    return &cached->info;
  }
  CodeIdentity id = identity(header);
  ++misses_;
  if (code_type_ && id.type != code_type_) return nullptr;
  if (!plausible_pointer(id.filename) || !plausible_pointer(id.name)) return nullptr;
  if (id.firstlineno < 0 || id.firstlineno > 100'000'000) return nullptr;

  Entry entry;
  entry.identity = id;
  if (!read_string(id.name, entry.info.name, 1024)) return nullptr;
  if (!read_string(id.filename, entry.info.filename, 4096)) return nullptr;
  if (id.qualname == 0 || !read_string(id.qualname, entry.info.qualname, 4096)) {
    entry.info.qualname = entry.info.name;
  }
  entry.info.firstlineno = id.firstlineno;
  if (layout_.code.flags) {
    // CO_GENERATOR | CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR
    constexpr uint32_t kGeneratorFlags = 0x20 | 0x80 | 0x100 | 0x200;
    entry.info.generator = (load<uint32_t>(header, layout_.code.flags) & kGeneratorFlags) != 0;
  }
  // The words a frame of this code takes on the data stack (3.11+).
  int64_t words = 0;
  if (layout_.code.framesize) {
    words = load<int32_t>(header, layout_.code.framesize);
  } else if (layout_.code.stacksize && layout_.code.nlocalsplus) {
    const int32_t stack = load<int32_t>(header, layout_.code.stacksize);
    const int32_t locals = load<int32_t>(header, layout_.code.nlocalsplus);
    if (stack >= 0 && locals >= 0)
      words = int64_t{stack} + locals + static_cast<int64_t>(layout_.code.frame_specials);
  }
  if (words > 0 && words < (1 << 20)) entry.info.framesize = static_cast<uint32_t>(words);
  entry.info.id = next_id_++;
  entry.proof = stamp;
  if (newer) ++counter_faults_;
  if (plausible_pointer(id.linetable)) read_bytes(id.linetable, entry.linetable, 1 << 20);

  if (entries_.size() >= kMaxEntries) clear();  // bound memory on code churn
  auto [it, inserted] = entries_.insert_or_assign(addr, std::move(entry));
  (void)inserted;
  last_ = Slot{addr, &it->second};
  return &it->second.info;
}

const CodeInfo* CodeCache::get_for_frame(uint64_t addr, uint64_t frame) {
  uint64_t misses_before = misses_;
  const CodeInfo* info = get(addr);
  if (!info || layout_.code.qualname || !layout_.code.varnames) return info;
  Entry* entry = find(addr);
  if (!entry || (misses_ == misses_before && !entry->class_pending)) return info;
  std::optional<std::string> cls = class_of_first_argument(addr, frame);
  entry->class_pending = false;
  if (!cls) return info;  // no method
  if (cls->empty()) {
    // Named "name" now, the method would stay apart from "Class.name" for the whole run
    // (frames are interned by code): the walk is read again instead, a few times.
    if (++entry->class_attempts >= kClassAttempts) return info;
    entry->class_pending = true;
    return nullptr;
  }
  entry->info.qualname = *cls + "." + entry->info.name;
  return &entry->info;
}

std::optional<std::string> CodeCache::class_of_first_argument(uint64_t code, uint64_t frame) {
  const Layout& L = layout_;
  int32_t argcount = 0;
  uint64_t varnames = 0, first_name = 0, first_arg = 0;
  if (!memory_.read_value(code + L.code.argcount, argcount) || argcount < 1) return std::nullopt;
  if (!memory_.read_value(code + L.code.varnames, varnames) || !plausible_pointer(varnames))
    return std::nullopt;
  if (!memory_.read_value(varnames + L.tuple_items, first_name)) return std::nullopt;
  std::string arg_name;
  if (!read_string(first_name, arg_name, 16) || (arg_name != "self" && arg_name != "cls"))
    return std::nullopt;
  // The frame is read as it is now, and read again after its first argument: between the
  // walk's read of its code and this one it may have returned and been reused by another
  // function, whose `self` would name the wrong class (CI read Cart.total as "Worker.total" on
  // 3.8). A frame whose code changed, or that is returning and has cleared its locals, is worth
  // another look. Past this point a failure is the class's own (a name too long or not an
  // identifier): the plain name stays.
  auto frame_runs = [&](uint64_t& argument) {
    uint64_t now_code = 0;
    return memory_.read_now(frame + L.frame.code, &now_code, sizeof now_code) && now_code == code &&
           memory_.read_now(frame + L.frame.localsplus, &argument, sizeof argument) &&
           plausible_pointer(argument);
  };
  if (!frame_runs(first_arg)) return std::string();
  uint64_t type = first_arg;
  if (arg_name == "self" && !memory_.read_now(first_arg + L.ob_type, &type, sizeof type))
    return std::nullopt;
  uint64_t tp_name = 0;
  if (!plausible_pointer(type) || !memory_.read_value(type + L.type_name, tp_name) ||
      tp_name < 4096)
    return std::nullopt;
  uint64_t first_arg_after = 0;
  if (!frame_runs(first_arg_after) || first_arg_after != first_arg) return std::string();
  // tp_name is a C string of unknown length: read a little, shrinking near unmapped memory.
  char buf[128] = {};
  size_t got = 0;
  for (size_t n : {sizeof(buf) - 1, size_t{32}, size_t{8}}) {
    if (memory_.read(tp_name, buf, n)) {
      got = n;
      break;
    }
  }
  std::string name(buf, strnlen(buf, got));
  if (name.empty() || name.size() == got)
    return std::nullopt;       // no terminator in reach: not a name
  auto dot = name.rfind('.');  // static types carry their module: "collections.OrderedDict"
  if (dot != std::string::npos) name = name.substr(dot + 1);
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (c & 0x80)))
      return std::nullopt;
  }
  if (!valid_utf8(name))
    return std::nullopt;  // corrupt memory: names must stay valid UTF-8 (JSON output)
  return name;
}

int CodeCache::line(uint64_t addr, int64_t offset) {
  Entry* found = last_.addr == addr && last_.entry ? last_.entry : find(addr);
  if (!found) return 0;
  const Entry& e = *found;
  if (offset < 0) return e.info.firstlineno;
  if (offset == e.last_offset) return e.last_line;
  auto memo = e.lines.find(offset);
  int line;
  if (memo != e.lines.end()) {
    line = memo->second;
  } else {
    line = line_for_offset(layout_.line_table, e.linetable, e.info.firstlineno, offset);
    if (e.lines.size() < kMaxLinesPerCode) e.lines.emplace(offset, line);
  }
  e.last_offset = offset;
  e.last_line = line;
  return line;
}

bool CodeCache::read_string(process::MemoryReader& memory, uint64_t addr, std::string& out,
                            size_t max_len) {
  out.clear();
  if (!plausible_pointer(addr)) return false;
  const auto& u = layout_.unicode;
  uint8_t header[128];
  size_t header_len = static_cast<size_t>(std::max(u.state + 4, u.length + 8));
  if (header_len > sizeof(header) || !memory.read(addr, header, header_len)) return false;
  std::span<const uint8_t> h(header, header_len);
  if (unicode_type_ && load<uint64_t>(h, layout_.ob_type) != unicode_type_) return false;
  int64_t length = load<int64_t>(h, u.length);
  uint32_t state = load<uint32_t>(h, u.state);
  unsigned kind = (state >> 2) & 7;
  bool compact = (state >> 5) & 1;
  bool ascii = (state >> 6) & 1;
  if (length < 0 || !compact || (kind != 1 && kind != 2 && kind != 4)) return false;
  if (ascii && kind != 1) return false;
  size_t n = std::min(static_cast<size_t>(length), max_len);
  uint64_t data = addr + (ascii ? u.ascii_data : u.compact_data);
  std::vector<uint8_t> raw(n * kind);
  if (n && !memory.read(data, raw.data(), raw.size())) return false;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t cp = kind == 1   ? raw[i]
                  : kind == 2 ? load<uint16_t>(raw, i * 2)
                              : load<uint32_t>(raw, i * 4);
    if (ascii && cp >= 0x80) cp = 0xFFFD;
    append_utf8(out, cp);
  }
  if (static_cast<size_t>(length) > max_len) out += "...";
  return true;
}

bool CodeCache::read_bytes(uint64_t addr, std::vector<uint8_t>& out, size_t max_len) {
  out.clear();
  const auto& b = layout_.bytes;
  uint8_t header[64];
  size_t header_len = static_cast<size_t>(std::max(layout_.ob_type + 8, b.size + 8));
  if (header_len > sizeof(header) || !memory_.read(addr, header, header_len)) return false;
  std::span<const uint8_t> h(header, header_len);
  if (bytes_type_ && load<uint64_t>(h, layout_.ob_type) != bytes_type_) return false;
  int64_t size = load<int64_t>(h, b.size);
  if (size < 0 || static_cast<uint64_t>(size) > max_len) return false;
  out.resize(static_cast<size_t>(size));
  if (size && !memory_.read(addr + b.data, out.data(), out.size())) {
    out.clear();
    return false;
  }
  return true;
}

}  // namespace spyglass::cpython
