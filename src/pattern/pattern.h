// Choosing functions: the one pattern language of the sampler, the reports and exact mode.
//
//   name               a function, a method or a nested function of that name
//   Class.method       also a nested class's (Outer.Class.method); `outer.inner` names
//                      `outer.<locals>.inner`
//   module.qualname    the module as dotted suffix of its name (`orders.Cart.total` for
//                      `shop.orders`), or a package the function is re-exported from
//                      (`sympy.factor` for sympy.polys.polytools.factor)
//   module:qualname    the same, with the split made explicit
//   path/file.py:name  by file: the path's last components, or a glob over the whole path
//   globs              `*`, `?`, `[...]` anywhere; `*` crosses dots and slashes (`handlers.*`)
//
// Plain C++ and nothing else: the spyglass command and the exact-mode extension (inside the
// target) compile the same file. A pattern is parsed once and matched against what a function
// is: its qualified name, its file and the dotted names its module may have.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace spyglass::pattern {

// A malformed pattern; what() is one sentence for the user.
class PatternError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// What a pattern is matched against.
struct FunctionIdentity {
  std::string_view qualname;  // co_qualname (Class.method, outer.<locals>.inner), else co_name
  std::string_view file;      // co_filename
  // The dotted names its module may be imported as, any order: the real __name__ and its
  // dotted suffixes in exact mode (module_names_for_module), the names the file could be
  // imported as when sampling (module_names_for_file).
  const std::vector<std::string>* modules = nullptr;
};

class Pattern {
 public:
  // Throws PatternError for an empty pattern, white space, nothing on one side of ':', or an
  // empty dotted component ("a..b", ".f", "f.").
  explicit Pattern(std::string_view text);
  const std::string& text() const { return text_; }
  bool matches(const FunctionIdentity& function) const;

 private:
  enum class Form { kName, kModule, kFile };
  bool module_matches(const FunctionIdentity& function) const;
  bool dotted_matches(const FunctionIdentity& function) const;

  std::string text_;
  Form form_ = Form::kName;
  std::string left_;        // module or file (kModule, kFile)
  std::string right_;       // the qualified-name part (the whole text for kName)
  std::string any_suffix_;  // "*." + right_: the pattern as the last components of a qualname
  // kName with a dot: each split "M.Q" of the text as (M + ".*", Q), for re-exports.
  std::vector<std::pair<std::string, std::string>> package_splits_;
  std::string left_package_;  // kModule: left_ + ".*"
};

// Shell-style glob over the whole text: `*` (any run, dots and slashes too), `?`, `[abc]`,
// `[a-z]`, `[!x]`/`[^x]`; an unterminated `[` is literal. Iterative, no recursion.
bool glob_match(std::string_view pattern, std::string_view text);

// "outer.<locals>.inner" -> "outer.inner".
std::string without_locals(std::string_view qualname);

// The dotted names a file could be imported as, longest first:
// "/srv/app/handlers/orders.py" -> {"srv.app.handlers.orders", "app.handlers.orders",
// "handlers.orders", "orders"}; "pkg/__init__.py" names "pkg". Sampling knows only the file.
std::vector<std::string> module_names_for_file(std::string_view file);

// Exact mode: the module's real name and its dotted suffixes ("shop.orders" -> {"shop.orders",
// "orders"}). A script runs as "__main__": that name, and the names of its file.
std::vector<std::string> module_names_for_module(std::string_view module, std::string_view file);

// The file as tracebacks of installed code and py-spy show it: from the top package down.
// `package_depth` is how many packages hold the module (0 for a top-level module, 2 for
// sympy.polys.polytools); negative when unknown: then the part after site-packages/,
// dist-packages/ or lib/pythonX.Y/ when there is one, else the path as given.
std::string short_file(std::string_view file, int package_depth = -1);
// The packages above a module named `module` ("a.b.c" -> 2; "__main__" and "" -> -1, unknown);
// for a package's own __init__.py, one more.
int package_depth_of_module(std::string_view module, std::string_view file);

// How results name a function a pattern matched: "qualname (file:line)", file as short_file.
std::string describe(std::string_view qualname, std::string_view short_file_name, int line);

// The names among `seen` closest to what `pattern` asks for (by the last component, ignoring
// case and globs), best first, at most `limit`; none when nothing is close.
std::vector<std::string> closest_names(std::string_view pattern,
                                       const std::vector<std::string>& seen, size_t limit = 3);

}  // namespace spyglass::pattern
