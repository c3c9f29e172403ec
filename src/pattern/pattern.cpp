#include "pattern/pattern.h"

#include <algorithm>
#include <cctype>
#include <tuple>

namespace spyglass::pattern {
namespace {

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// Matches one character against a `[...]` class starting at pattern[pos] (just after '[').
// Returns the position after ']' or npos when the class is unterminated.
size_t match_class(std::string_view pattern, size_t pos, char c, bool& matched) {
  bool negate = pos < pattern.size() && (pattern[pos] == '!' || pattern[pos] == '^');
  if (negate) ++pos;
  matched = false;
  bool first = true;
  while (pos < pattern.size() && (pattern[pos] != ']' || first)) {
    first = false;
    char low = pattern[pos];
    char high = low;
    if (pos + 2 < pattern.size() && pattern[pos + 1] == '-' && pattern[pos + 2] != ']') {
      high = pattern[pos + 2];
      pos += 2;
    }
    if (low <= c && c <= high) matched = true;
    ++pos;
  }
  if (pos >= pattern.size()) return std::string_view::npos;
  if (negate) matched = !matched;
  return pos + 1;
}

bool is_file_part(std::string_view left) {
  return left.find('/') != std::string_view::npos || ends_with(left, ".py");
}

void reject(std::string_view text, std::string_view why) {
  throw PatternError("'" + std::string(text) + "' is not a function pattern: " + std::string(why));
}

// The qualified name as written and, when it has `<locals>` scopes, without them.
struct Qualnames {
  explicit Qualnames(std::string_view qualname) : written(qualname) {
    if (qualname.find(".<locals>") != std::string_view::npos) plain = without_locals(qualname);
  }
  template <typename Fn>
  bool any(Fn&& fn) const {
    return fn(written) || (!plain.empty() && fn(std::string_view(plain)));
  }
  std::string_view written;
  std::string plain;
};

bool any_module(const FunctionIdentity& function, std::string_view glob) {
  if (function.modules == nullptr) return false;
  for (const std::string& module : *function.modules) {
    if (glob_match(glob, module)) return true;
  }
  return false;
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view text) {
  size_t p = 0, t = 0;
  size_t star_p = std::string_view::npos, star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size()) {
      char pc = pattern[p];
      if (pc == '*') {
        star_p = p++;
        star_t = t;
        continue;
      }
      if (pc == '?') {
        ++p;
        ++t;
        continue;
      }
      if (pc == '[') {
        bool matched = false;
        size_t next = match_class(pattern, p + 1, text[t], matched);
        if (next != std::string_view::npos) {
          if (matched) {
            p = next;
            ++t;
            continue;
          }
        } else if (text[t] == '[') {  // unterminated: a literal '['
          ++p;
          ++t;
          continue;
        }
      } else if (pc == text[t]) {
        ++p;
        ++t;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p + 1;  // let the last star swallow one more character
    t = ++star_t;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::string without_locals(std::string_view qualname) {
  std::string out(qualname);
  const std::string_view marker = ".<locals>";
  for (size_t pos; (pos = out.find(marker)) != std::string::npos;) out.erase(pos, marker.size());
  return out;
}

Pattern::Pattern(std::string_view text) : text_(text) {
  if (text_.empty()) reject(text_, "it is empty");
  if (text_.find_first_of(" \t\r\n") != std::string::npos) reject(text_, "it holds white space");
  size_t colon = text_.rfind(':');
  if (colon != std::string::npos) {
    left_ = text_.substr(0, colon);
    right_ = text_.substr(colon + 1);
    if (left_.empty() || right_.empty()) {
      reject(text_,
             "expected module:function or file.py:function, with something on both "
             "sides of ':'");
    }
    form_ = is_file_part(left_) ? Form::kFile : Form::kModule;
  } else {
    right_ = text_;
    form_ = Form::kName;
  }
  // Dotted names have no empty components ("a..b", ".f", "f."): a typo, never a function.
  auto check_dots = [&](std::string_view part) {
    if (part.front() == '.' || part.back() == '.' || part.find("..") != std::string_view::npos) {
      reject(text_, "a dotted name has an empty part");
    }
  };
  check_dots(right_);
  if (form_ == Form::kModule) check_dots(left_);

  any_suffix_ = "*." + right_;
  if (form_ == Form::kModule) left_package_ = left_ + ".*";
  if (form_ == Form::kName) {
    for (size_t dot = right_.find('.'); dot != std::string::npos; dot = right_.find('.', dot + 1)) {
      package_splits_.emplace_back(right_.substr(0, dot) + ".*", right_.substr(dot + 1));
    }
  }
}

bool Pattern::matches(const FunctionIdentity& function) const {
  const Qualnames names(function.qualname);
  // The qualified-name part names the whole qualname or its last components.
  auto loose = [&](std::string_view q) {
    return glob_match(right_, q) || glob_match(any_suffix_, q);
  };
  switch (form_) {
    case Form::kFile: {
      const std::string_view file = function.file;
      bool file_ok = file == left_ || ends_with(file, "/" + left_) || glob_match(left_, file) ||
                     glob_match("*/" + left_, file);
      return file_ok && names.any(loose);
    }
    case Form::kModule:
      if (any_module(function, left_) && names.any(loose)) return true;
      // A package the function is re-exported from: the name as the package exports it.
      return names.any([&](std::string_view q) { return glob_match(right_, q); }) &&
             any_module(function, left_package_);
    case Form::kName:
      if (names.any(loose)) return true;
      return package_splits_.empty() ? false : dotted_matches(function);
  }
  return false;
}

bool Pattern::dotted_matches(const FunctionIdentity& function) const {
  if (function.modules == nullptr) return false;
  const Qualnames names(function.qualname);
  std::string full;
  for (const std::string& module : *function.modules) {
    bool hit = names.any([&](std::string_view q) {
      full.assign(module).append(".").append(q);
      return glob_match(right_, full);
    });
    if (hit) return true;
  }
  // `package.name` where the package re-exports a name defined in one of its modules
  // (sympy.factor, defined in sympy.polys.polytools): the module part is a package holding the
  // defining module, and the rest is the function's whole qualified name.
  for (const auto& [package, rest] : package_splits_) {
    bool name_ok = names.any([&](std::string_view q) { return glob_match(rest, q); });
    if (name_ok && any_module(function, package)) return true;
  }
  return false;
}

std::vector<std::string> module_names_for_file(std::string_view file) {
  std::string_view path = file;
  if (ends_with(path, ".py")) {
    path.remove_suffix(3);
  } else if (ends_with(path, ".pyc")) {
    path.remove_suffix(4);
  }
  if (ends_with(path, "/__init__")) path.remove_suffix(9);
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > start) parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  std::vector<std::string> names;
  for (size_t first = 0; first < parts.size(); ++first) {
    std::string name;
    for (size_t i = first; i < parts.size(); ++i) {
      if (!name.empty()) name += '.';
      name += parts[i];
    }
    names.push_back(std::move(name));
  }
  return names;
}

std::vector<std::string> module_names_for_module(std::string_view module, std::string_view file) {
  if (module.empty() || module == "__main__") {
    std::vector<std::string> names = module_names_for_file(file);
    if (!module.empty()) names.insert(names.begin(), std::string(module));
    return names;
  }
  std::vector<std::string> names{std::string(module)};
  for (size_t dot = module.find('.'); dot != std::string_view::npos;
       dot = module.find('.', dot + 1)) {
    names.emplace_back(module.substr(dot + 1));
  }
  return names;
}

int package_depth_of_module(std::string_view module, std::string_view file) {
  if (module.empty() || module == "__main__") return -1;
  int depth = static_cast<int>(std::count(module.begin(), module.end(), '.'));
  if (ends_with(file, "/__init__.py") || ends_with(file, "/__init__.pyc")) ++depth;
  return depth;
}

std::string short_file(std::string_view file, int package_depth) {
  if (package_depth >= 0) {
    size_t keep_from = file.size();
    for (int slashes = 0; slashes <= package_depth; ++slashes) {
      size_t slash = keep_from == 0 ? std::string_view::npos : file.rfind('/', keep_from - 1);
      if (slash == std::string_view::npos) return std::string(file);
      keep_from = slash;
    }
    return std::string(file.substr(keep_from + 1));
  }
  // Installed code: what follows the installation's folder.
  for (std::string_view marker : {"/site-packages/", "/dist-packages/"}) {
    size_t at = file.rfind(marker);
    if (at != std::string_view::npos) return std::string(file.substr(at + marker.size()));
  }
  // The standard library: ".../lib/python3.12/json/__init__.py" -> "json/__init__.py".
  size_t lib = file.rfind("/lib/python");
  if (lib != std::string_view::npos) {
    size_t slash = file.find('/', lib + 11);
    if (slash != std::string_view::npos) return std::string(file.substr(slash + 1));
  }
  return std::string(file);
}

std::string describe(std::string_view qualname, std::string_view short_file_name, int line) {
  std::string out(qualname);
  out += " (";
  out += short_file_name;
  out += ':';
  out += std::to_string(line);
  out += ')';
  return out;
}

namespace {

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The part of a name or pattern a person means most: after the last '.' or ':', globs removed.
std::string key_part(std::string_view name) {
  size_t cut = name.find_last_of(".:");
  std::string_view last = cut == std::string_view::npos ? name : name.substr(cut + 1);
  std::string out;
  for (char c : last) {
    if (c != '*' && c != '?' && c != '[' && c != ']') out += c;
  }
  return lowercase(out);
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::vector<std::string> closest_names(std::string_view pattern,
                                       const std::vector<std::string>& seen, size_t limit) {
  const std::string wanted = key_part(pattern);
  if (wanted.empty()) return {};
  const size_t allowed = std::max<size_t>(1, wanted.size() / 3);
  std::vector<std::tuple<size_t, size_t, std::string>> ranked;  // (distance, length, name)
  for (const std::string& name : seen) {
    const std::string have = key_part(name);
    if (have.empty()) continue;
    size_t distance = edit_distance(wanted, have);
    // One contains the other (`compute` for `heavy_computation`): close, after the typos.
    if (distance > allowed && wanted.size() >= 3 &&
        (have.find(wanted) != std::string::npos || wanted.find(have) != std::string::npos)) {
      distance = allowed + 1;
    } else if (distance > allowed) {
      continue;
    }
    ranked.emplace_back(distance, name.size(), name);
  }
  std::sort(ranked.begin(), ranked.end());
  std::vector<std::string> out;
  for (const auto& [distance, length, name] : ranked) {
    if (out.size() >= limit) break;
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

}  // namespace spyglass::pattern
