#include "report/chosen.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>

namespace spyglass::report {

using sampling::FrameId;
using sampling::FrameInfo;
using sampling::StackId;

namespace {

constexpr uint32_t kNotSeen = std::numeric_limits<uint32_t>::max();

std::string function_key(const std::string& qualname, const std::string& file, int firstlineno) {
  std::string key = qualname;
  key += '\0';
  key += file;
  key += '\0';
  key += std::to_string(firstlineno);
  return key;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// How many packages hold `file` on the target's disk: the folders above it with an
// __init__.py, counted up from the file, as py-spy shortens names. -1 when the file's folder
// cannot be looked at (not an absolute path, gone, no permission). Answers are kept per folder.
int package_depth_on_disk(const std::string& file, pid_t pid) {
  if (file.empty() || file[0] != '/') return -1;
  static std::mutex mutex;
  static std::map<std::pair<pid_t, std::string>, bool> is_package;  // folder -> has __init__.py
  const std::string root = pid != 0 ? fmt::format("/proc/{}/root", pid) : std::string();
  std::lock_guard lock(mutex);
  if (is_package.size() > 100'000) is_package.clear();
  auto package = [&](const std::string& folder) {
    auto [it, inserted] = is_package.try_emplace({pid, folder}, false);
    if (inserted) it->second = ::access((root + folder + "/__init__.py").c_str(), F_OK) == 0;
    return it->second;
  };
  std::string folder = file.substr(0, file.rfind('/'));
  if (::access((root + (folder.empty() ? "/" : folder)).c_str(), X_OK) != 0) return -1;
  int depth = 0;
  // A package's own __init__.py is named from the package's folder down.
  if (ends_with(file, "/__init__.py") && package(folder)) {
    ++depth;
    folder = folder.substr(0, folder.rfind('/'));
  }
  while (!folder.empty() && package(folder)) {
    ++depth;
    folder = folder.substr(0, folder.rfind('/'));
  }
  return depth;
}

void add_figures(Figures& into, const sampling::Weight& w, bool self) {
  into.seconds += w.seconds;
  into.samples += w.samples;
  if (self) into.self_seconds += w.seconds;
}

}  // namespace

std::string function_label(const std::string& qualname, const std::string& file, int firstlineno,
                           pid_t pid) {
  int depth = package_depth_on_disk(file, pid);
  // A module found on disk but in no package: its file name, unless the path tells more
  // (site-packages/, lib/python3.X/ of a namespace package).
  std::string shown = pattern::short_file(file, depth);
  if (depth == 0) {
    std::string by_path = pattern::short_file(file, -1);
    if (by_path != file) shown = by_path;
  }
  return pattern::describe(qualname, shown, firstlineno);
}

std::string main_script_file(const sampling::Profile& profile) {
  const auto& stacks = profile.stacks;
  // Per node: on a chain of runpy frames from the root (`python -m module`).
  std::vector<char> runpy(stacks.size(), 0);
  runpy[sampling::kRootStack] = 1;
  for (StackId id = 1; id < stacks.size(); ++id) {
    if (!runpy[stacks.parent(id)]) continue;
    const FrameInfo& frame = profile.frames.get(stacks.frame(id));
    if (frame.function == "<module>" && !frame.file.empty() && frame.file[0] != '<') {
      return frame.file;
    }
    runpy[id] = ends_with(frame.file, "/runpy.py") || frame.file == "<frozen runpy>";
  }
  return {};
}

ChosenSet::ChosenSet(const sampling::Profile& profile, const std::vector<std::string>& patterns)
    : texts_(patterns), pid_(profile.run.pid) {
  std::vector<std::unique_ptr<pattern::Pattern>> parsed;
  for (const std::string& text : patterns) {
    try {
      parsed.push_back(std::make_unique<pattern::Pattern>(text));
    } catch (const pattern::PatternError&) {
      parsed.push_back(nullptr);
    }
  }
  const size_t nframes = profile.frames.size();
  function_of_.resize(nframes);
  for (FrameId f = 0; f < nframes; ++f) {
    const FrameInfo& info = profile.frames.get(f);
    auto [it, inserted] =
        by_key_.try_emplace(function_key(info.function, info.file, info.firstlineno),
                            static_cast<uint32_t>(functions_.size()));
    if (inserted) functions_.push_back({info.function, info.file, info.firstlineno});
    function_of_[f] = it->second;
  }
  // The module names a file could have, worked out once per file; the main script's module is
  // also __main__.
  const std::string main_file = parsed.empty() ? std::string() : main_script_file(profile);
  std::unordered_map<std::string, std::vector<std::string>> modules_of_file;
  auto modules = [&](const std::string& file) -> const std::vector<std::string>& {
    auto [it, inserted] = modules_of_file.try_emplace(file);
    if (inserted) {
      it->second = pattern::module_names_for_file(file);
      if (file == main_file) it->second.insert(it->second.begin(), "__main__");
    }
    return it->second;
  };
  any_.assign(functions_.size(), 0);
  matched_.assign(parsed.size(), std::vector<char>(functions_.size(), 0));
  lists_.resize(parsed.size());
  for (uint32_t fn = 0; fn < functions_.size(); ++fn) {
    const ProfileFunction& function = functions_[fn];
    pattern::FunctionIdentity identity{function.qualname, function.file, &modules(function.file)};
    for (size_t p = 0; p < parsed.size(); ++p) {
      if (parsed[p] && parsed[p]->matches(identity)) {
        matched_[p][fn] = 1;
        any_[fn] = 1;
        lists_[p].push_back(fn);
      }
    }
  }
}

uint32_t ChosenSet::function_index(const FrameInfo& frame) const {
  auto it = by_key_.find(function_key(frame.function, frame.file, frame.firstlineno));
  return it == by_key_.end() ? kNotSeen : it->second;
}

bool ChosenSet::chosen(const FrameInfo& frame) const {
  uint32_t fn = function_index(frame);
  return fn != kNotSeen && any_[fn] != 0;
}

bool ChosenSet::matches(const FrameInfo& frame, size_t pattern) const {
  uint32_t fn = function_index(frame);
  return fn != kNotSeen && matched_[pattern][fn] != 0;
}

std::vector<std::string> ChosenSet::seen_names() const {
  std::vector<std::string> names;
  names.reserve(functions_.size());
  for (const ProfileFunction& function : functions_) names.push_back(function.qualname);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::string closest_names_hint(const std::string& pattern, const ChosenSet& chosen) {
  const auto close = pattern::closest_names(pattern, chosen.seen_names());
  std::string hint;
  for (const std::string& name : close) hint += (hint.empty() ? "; closest: " : ", ") + name;
  return hint;
}

void add_chosen_results(const sampling::Profile& profile, const ChosenSet& chosen, uint64_t samples,
                        double profiled_seconds, Results& results) {
  const size_t nnodes = profile.stacks.size();
  const size_t nthreads = std::min(profile.threads.size(), profile.weights.size());
  const size_t nfunctions = chosen.functions().size();
  auto share_of = [&](double seconds) {
    return profiled_seconds > 0 ? seconds / profiled_seconds : 0;
  };

  // Per matched function and thread, its figures: one walk of each weighted stack, each
  // function counted once per stack however deep a recursion.
  std::vector<char> wanted(nfunctions, 0);
  for (size_t p = 0; p < chosen.size(); ++p) {
    if (chosen.matched_functions(p).size() > 1) {
      for (uint32_t fn : chosen.matched_functions(p)) wanted[fn] = 1;
    }
  }
  std::unordered_map<uint64_t, Figures> per_function_thread;  // fn * nthreads + thread
  if (std::find(wanted.begin(), wanted.end(), 1) != wanted.end()) {
    std::vector<uint32_t> stamp(nfunctions, 0);
    uint32_t walk = 0;
    std::vector<FrameId> path;
    for (size_t t = 0; t < nthreads; ++t) {
      for (const auto& [stack, w] : profile.weights[t]) {
        if (stack == sampling::kRootStack || w.samples == 0) continue;
        profile.stacks.path(stack, path);
        ++walk;
        const uint32_t top = chosen.function_of(profile.stacks.frame(stack));
        for (FrameId frame : path) {
          const uint32_t fn = chosen.function_of(frame);
          if (!wanted[fn] || stamp[fn] == walk) continue;
          stamp[fn] = walk;
          add_figures(per_function_thread[uint64_t{fn} * nthreads + t], w, fn == top);
        }
      }
    }
  }

  std::vector<char> frame_match(profile.frames.size(), 0);
  std::vector<char> on_stack(nnodes, 0);
  for (size_t p = 0; p < chosen.size(); ++p) {
    FunctionResult fr;
    fr.name = chosen.text(p);
    for (FrameId f = 0; f < frame_match.size(); ++f) frame_match[f] = chosen.matches(f, p);
    // Trie nodes are created after their parents, so one pass in id order tells, for each
    // stack, whether the pattern is anywhere on it (counted once, however deep a recursion).
    for (StackId id = 1; id < nnodes; ++id) {
      on_stack[id] = on_stack[profile.stacks.parent(id)] || frame_match[profile.stacks.frame(id)];
    }
    double error_sq = 0;
    for (size_t t = 0; t < nthreads; ++t) {
      Figures fig;
      for (const auto& [stack, w] : profile.weights[t]) {
        if (on_stack[stack]) add_figures(fig, w, frame_match[profile.stacks.frame(stack)] != 0);
      }
      if (fig.samples == 0) continue;
      fig.error_seconds = sampling_error_seconds(fig.samples, samples, profiled_seconds);
      error_sq += fig.error_seconds * fig.error_seconds;
      fr.figures.seconds += fig.seconds;
      fr.figures.self_seconds += fig.self_seconds;
      fr.figures.samples += fig.samples;
      const sampling::ThreadInfo& ti = profile.threads[t];
      fr.threads.push_back(ThreadFigures{ti.thread_id, ti.native_id, ti.name, fig});
    }
    fr.has_data = fr.figures.samples > 0;
    fr.figures.error_seconds = std::sqrt(error_sq);
    if (!fr.has_data && samples > 0) {
      // Never seen is not "exactly zero": it may have run between samples (docs/accuracy.md).
      fr.figures.error_seconds = sampling_error_seconds(0, samples, profiled_seconds);
    }
    fr.share = share_of(fr.figures.seconds);

    const auto& matched = chosen.matched_functions(p);
    for (uint32_t fn : matched) {
      const ProfileFunction& function = chosen.functions()[fn];
      MatchResult match;
      match.function = function.qualname;
      match.file = function.file;
      match.line = function.firstlineno;
      match.label =
          function_label(function.qualname, function.file, function.firstlineno, chosen.pid());
      if (matched.size() > 1) {
        match.has_figures = true;
        double match_error_sq = 0;
        for (size_t t = 0; t < nthreads; ++t) {
          auto it = per_function_thread.find(uint64_t{fn} * nthreads + t);
          if (it == per_function_thread.end()) continue;
          const Figures& fig = it->second;
          double error = sampling_error_seconds(fig.samples, samples, profiled_seconds);
          match_error_sq += error * error;
          match.figures.seconds += fig.seconds;
          match.figures.self_seconds += fig.self_seconds;
          match.figures.samples += fig.samples;
        }
        match.figures.error_seconds = std::sqrt(match_error_sq);
        match.share = share_of(match.figures.seconds);
      }
      fr.matches.push_back(std::move(match));
    }
    std::stable_sort(fr.matches.begin(), fr.matches.end(),
                     [](const MatchResult& a, const MatchResult& b) {
                       if (a.figures.seconds != b.figures.seconds) {
                         return a.figures.seconds > b.figures.seconds;
                       }
                       if (a.figures.self_seconds != b.figures.self_seconds) {
                         return a.figures.self_seconds > b.figures.self_seconds;
                       }
                       return a.label < b.label;
                     });
    if (matched.empty() && nfunctions > 0) {
      results.notes.push_back(fmt::format("'{}' matched none of the {} functions seen{}", fr.name,
                                          nfunctions, closest_names_hint(fr.name, chosen)));
    }
    results.functions.push_back(std::move(fr));
  }
}

}  // namespace spyglass::report
