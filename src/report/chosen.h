// The chosen functions of one query (results, a tree, an export): every pattern parsed once,
// every function of the profile judged once, and the figures of each pattern and of each
// function it matched.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "pattern/pattern.h"
#include "report/results.h"
#include "sampling/profile.h"

namespace spyglass::report {

// A function of the profile: its frames with the line left out.
struct ProfileFunction {
  std::string qualname;
  std::string file;
  int firstlineno = 0;
};

class ChosenSet {
 public:
  // A malformed pattern matches nothing (patterns are checked when they are chosen).
  ChosenSet(const sampling::Profile& profile, const std::vector<std::string>& patterns);

  size_t size() const { return texts_.size(); }
  const std::string& text(size_t pattern) const { return texts_[pattern]; }
  bool matches(sampling::FrameId frame, size_t pattern) const {
    return matched_[pattern][function_of_[frame]] != 0;
  }
  bool chosen(sampling::FrameId frame) const { return any_[function_of_[frame]] != 0; }
  bool matches_function(uint32_t function, size_t pattern) const {
    return matched_[pattern][function] != 0;
  }
  // By content, for the views of exports and trees (the profile's frames, lines merged or not).
  bool chosen(const sampling::FrameInfo& frame) const;
  bool matches(const sampling::FrameInfo& frame, size_t pattern) const;
  // Functions, each once: frame -> function index.
  uint32_t function_of(sampling::FrameId frame) const { return function_of_[frame]; }
  const std::vector<ProfileFunction>& functions() const { return functions_; }
  // The functions a pattern matched, in the order first seen.
  const std::vector<uint32_t>& matched_functions(size_t pattern) const { return lists_[pattern]; }
  // The qualified names of every function seen, for hints about a pattern that matches none.
  std::vector<std::string> seen_names() const;
  pid_t pid() const { return pid_; }

 private:
  uint32_t function_index(const sampling::FrameInfo& frame) const;  // UINT32_MAX: not seen

  std::vector<std::string> texts_;
  std::vector<ProfileFunction> functions_;
  std::vector<uint32_t> function_of_;                 // per frame
  std::vector<std::vector<char>> matched_;            // per pattern, per function
  std::vector<char> any_;                             // per function
  std::vector<std::vector<uint32_t>> lists_;          // per pattern
  std::unordered_map<std::string, uint32_t> by_key_;  // "qualname\0file\0firstlineno"
  pid_t pid_ = 0;
};

// The file of the main script (its module is __main__): the outermost `<module>` frame of a
// stack, below runpy's frames for `python -m`. Empty when no stack shows it.
std::string main_script_file(const sampling::Profile& profile);

// How results name a function: "qualname (file:line)", the file shortened from its top package
// down as on the target's disk (pid != 0: read through /proc/PID/root), else by its path alone.
std::string function_label(const std::string& qualname, const std::string& file, int firstlineno,
                           pid_t pid);

// For a pattern that matched none of the functions seen: "; closest: a, b" naming the closest
// names seen, or "" when none is close.
std::string closest_names_hint(const std::string& pattern, const ChosenSet& chosen);

// The rows of `chosen`, in its order: each pattern's figures, its threads, and the figures of
// each function it matched (inclusive counted once per sample, self at the top of the stack).
// `samples` and `profiled_seconds` are the run's (the error bounds' base). A pattern that matched
// nothing while other functions were seen adds a note naming the closest names seen.
void add_chosen_results(const sampling::Profile& profile, const ChosenSet& chosen, uint64_t samples,
                        double profiled_seconds, Results& results);

}  // namespace spyglass::report
