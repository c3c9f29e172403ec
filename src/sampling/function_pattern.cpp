#include "sampling/function_pattern.h"

#include <fmt/format.h>
#include <fnmatch.h>

#include "common/error.h"

namespace spyglass::sampling {
namespace {

bool glob(const std::string& pattern, const std::string& text) {
  return fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The part of a qualified name after the last '.', ignoring "<locals>" scopes.
std::string last_component(const std::string& qualname) {
  auto dot = qualname.rfind('.');
  return dot == std::string::npos ? qualname : qualname.substr(dot + 1);
}

// "outer.<locals>.inner" is written "outer.inner" by people.
std::string without_locals(const std::string& qualname) {
  std::string out = qualname;
  const std::string marker = ".<locals>";
  for (size_t pos; (pos = out.find(marker)) != std::string::npos;) out.erase(pos, marker.size());
  return out;
}

bool function_matches(const std::string& pattern, const std::string& qualname) {
  if (glob(pattern, qualname)) return true;
  std::string plain = without_locals(qualname);
  if (plain != qualname && glob(pattern, plain)) return true;
  // A bare name matches a method or nested function of that name.
  if (pattern.find('.') == std::string::npos && glob(pattern, last_component(qualname)))
    return true;
  return false;
}

}  // namespace

std::vector<std::string> module_names_for_file(const std::string& file) {
  std::string path = file;
  if (ends_with(path, ".py")) path.resize(path.size() - 3);
  else if (ends_with(path, ".pyc")) path.resize(path.size() - 4);
  if (ends_with(path, "/__init__")) path.resize(path.size() - 9);
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
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

FunctionPattern::FunctionPattern(std::string text) : text_(std::move(text)) {
  if (text_.empty() || text_.find_first_of(" \t\n") != std::string::npos) {
    throw Error(ErrorKind::kUsage, fmt::format("'{}' is not a function pattern", text_));
  }
  auto colon = text_.rfind(':');
  if (colon != std::string::npos) {
    has_colon_ = true;
    module_or_file_ = text_.substr(0, colon);
    function_ = text_.substr(colon + 1);
    if (module_or_file_.empty() || function_.empty()) {
      throw Error(ErrorKind::kUsage,
                  fmt::format("'{}' is not a function pattern: expected module:function or "
                              "file.py:function",
                              text_));
    }
    file_form_ = ends_with(module_or_file_, ".py") || module_or_file_.find('/') != std::string::npos;
  } else {
    function_ = text_;
  }
}

bool FunctionPattern::matches(const std::string& qualname, const std::string& file) const {
  if (has_colon_) {
    if (file_form_) {
      bool file_ok = file == module_or_file_ || ends_with(file, "/" + module_or_file_) ||
                     glob(module_or_file_, file) || glob("*/" + module_or_file_, file);
      return file_ok && function_matches(function_, qualname);
    }
    if (!function_matches(function_, qualname)) return false;
    for (const auto& module : module_names_for_file(file)) {
      if (glob(module_or_file_, module)) return true;
    }
    return false;
  }
  if (function_matches(function_, qualname)) return true;
  // module.qualname, or a glob over it ("handlers.*").
  if (function_.find('.') == std::string::npos) return false;
  std::string plain = without_locals(qualname);
  for (const auto& module : module_names_for_file(file)) {
    if (glob(function_, module + "." + qualname) || glob(function_, module + "." + plain))
      return true;
  }
  return false;
}

}  // namespace spyglass::sampling
