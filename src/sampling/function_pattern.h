// Choosing functions: `name`, `Class.method`, `module.qualname`, `module:qualname`,
// `path/to/file.py:name`, and glob patterns (`handlers.*`), matched against what a frame
// knows: the qualified name and the file.
#pragma once

#include <string>
#include <vector>

namespace spyglass::sampling {

class FunctionPattern {
 public:
  // Throws Error(kUsage) for an empty or malformed pattern.
  explicit FunctionPattern(std::string text);
  const std::string& text() const { return text_; }
  // `qualname` as the code object has it (co_qualname, or co_name before 3.11); `file` as
  // co_filename.
  bool matches(const std::string& qualname, const std::string& file) const;

 private:
  std::string text_;
  std::string module_or_file_;  // left of ':' (or empty)
  std::string function_;        // right of ':' or the whole pattern
  bool has_colon_ = false;
  bool file_form_ = false;      // left side names a .py file
};

// The dotted module names a file could be imported as, longest first:
// "/srv/app/handlers/orders.py" -> {"srv.app.handlers.orders", "app.handlers.orders",
// "handlers.orders", "orders"}; "__init__.py" names its package.
std::vector<std::string> module_names_for_file(const std::string& file);

}  // namespace spyglass::sampling
