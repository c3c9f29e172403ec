// Reading a few Python objects of the target, by value and bounded: a frame's local variables
// (`dump --locals`) and an instance attribute (a thread's `threading.Thread.name`). Everything
// read is checked before use; whatever does not check out is shown as unreadable, never
// followed. Only what these two uses need: no general object model.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cpython/layout.h"
#include "cpython/stack.h"

namespace spyglass::process {
class MemoryReader;
}

namespace spyglass::cpython {

class CodeCache;

struct LocalVariable {
  std::string name;
  std::string value;  // a short repr: 42, 'text', 3.5, None, <dict of 3 items>, <Foo object>
};

class ObjectReader {
 public:
  ObjectReader(process::MemoryReader& memory, const Layout& layout, CodeCache& codes);
  // Whether the layout describes plain objects (versions.toml has an `objects` group for it).
  bool supported() const { return layout_.objects.dict_keys != 0; }

  // The local variables of a frame from a walk (its arguments first), at most `max_count`;
  // `more` gets how many were left out. Unset locals are left out.
  std::vector<LocalVariable> locals(const Frame& frame, size_t max_count, size_t& more);
  // The object in local slot `index` of a frame (0 when unreadable): slot 0 is `self` of a
  // method.
  uint64_t local_object(const Frame& frame, size_t index);
  // A short repr of the object at `addr`, bounded to about `max_len` characters.
  std::string repr(uint64_t addr, size_t max_len = 80);
  // The type name of an object (tp_name), empty when unreadable.
  std::string type_name(uint64_t addr);
  // An instance attribute that is a str (`obj.name`), from the instance's dict or inline
  // values; nullopt when absent or unreadable.
  std::optional<std::string> string_attribute(uint64_t obj, const std::string& name);
  // The object an instance attribute holds (obj.name), 0 when absent or unreadable.
  uint64_t attribute_object(uint64_t obj, const std::string& name);
  // The value of a str key in a dict (sys.modules["asyncio.tasks"]), 0 when absent.
  uint64_t dict_item(uint64_t dict, const std::string& key);
  // The name of a type object itself (tp_name), empty when unreadable.
  std::string type_name_of_type(uint64_t type);

 private:
  uint64_t attribute(uint64_t obj, const std::string& name);
  uint64_t lookup_in_dict(uint64_t dict, const std::string& name);
  uint64_t lookup_in_keys(uint64_t keys, uint64_t values, const std::string& name);
  bool read_u64(uint64_t addr, uint64_t& out);
  std::string int_repr(uint64_t addr);

  process::MemoryReader& memory_;
  const Layout& layout_;
  CodeCache& codes_;
  const Layout::Objects& objects_;  // layout_.objects
  int minor_;                       // the dict and managed-dict models differ by version
};

}  // namespace spyglass::cpython
