#include "extension/pattern.h"

namespace spyglass::exact {
namespace {

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

std::string file_stem(std::string_view path) {
  size_t slash = path.rfind('/');
  std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  if (base.size() > 3 && base.substr(base.size() - 3) == ".py") base.remove_suffix(3);
  return std::string(base);
}

}  // namespace

std::string CodeIdentity::describe() const {
  return module + ":" + qualname + " (" + filename + ":" + std::to_string(first_line) + ")";
}

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

Pattern::Pattern(std::string text) : text_(std::move(text)) {
  size_t colon = text_.rfind(':');
  if (colon == std::string::npos) {
    right_ = text_;
    return;
  }
  left_ = text_.substr(0, colon);
  right_ = text_.substr(colon + 1);
  left_is_file_ = left_.find('/') != std::string::npos ||
                  (left_.size() > 3 && left_.compare(left_.size() - 3, 3, ".py") == 0);
}

bool Pattern::qualname_matches(std::string_view pattern, std::string_view qualname) const {
  if (glob_match(pattern, qualname)) return true;
  // `method` or `Class.method` also name `Outer.Class.method` and `f.<locals>.method`.
  std::string suffix = "*.";
  suffix += pattern;
  return glob_match(suffix, qualname);
}

bool Pattern::matches(const CodeIdentity& code) const {
  // A script runs as __main__; its file name is the module name people write.
  std::string alias = code.module == "__main__" ? file_stem(code.filename) : std::string();
  if (!left_.empty()) {
    if (left_is_file_) {
      if (!glob_match(left_, code.filename) && !glob_match("*/" + left_, code.filename)) {
        return false;
      }
    } else if (!glob_match(left_, code.module) && (alias.empty() || !glob_match(left_, alias))) {
      return false;
    }
    return qualname_matches(right_, code.qualname);
  }
  if (qualname_matches(right_, code.qualname)) return true;
  if (glob_match(right_, code.module + "." + code.qualname)) return true;
  return !alias.empty() && glob_match(right_, alias + "." + code.qualname);
}

}  // namespace spyglass::exact
