// Function patterns, the same as the command line's: `name`, `Class.method`, `module:qualname`,
// `module.qualname`, `file.py:name`, with shell globs (`*`, `?`, `[...]`) anywhere, matched against
// what a code object is: its module, qualified name and file.
#pragma once

#include <string>
#include <string_view>

namespace spyglass::exact {

struct CodeIdentity {
  std::string module;    // __name__ of the globals it runs in ("__main__" for a script)
  std::string qualname;  // co_qualname, or recovered before 3.11
  std::string filename;  // co_filename
  int first_line = 0;

  // "module:qualname (file:line)", as results list the functions a pattern matched.
  std::string describe() const;
};

// Shell-style glob over the whole text; `*` crosses dots and slashes. Iterative, no recursion.
bool glob_match(std::string_view pattern, std::string_view text);

class Pattern {
 public:
  explicit Pattern(std::string text);
  const std::string& text() const { return text_; }
  bool matches(const CodeIdentity& code) const;

 private:
  bool qualname_matches(std::string_view pattern, std::string_view qualname) const;

  std::string text_;
  std::string left_;   // before ':' (module or file), empty when none
  std::string right_;  // the qualified-name part
  bool left_is_file_ = false;
};

}  // namespace spyglass::exact
