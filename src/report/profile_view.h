// Internal to the report layer: a profile's stacks seen through the frames a report shows (lines
// merged into functions or not), with children lists and inclusive weights, built without
// recursion so that stacks thousands of frames deep cost nothing special.
#pragma once

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "report/export.h"
#include "sampling/profile.h"

namespace spyglass::report::detail {

// How a view draws the asyncio tasks that other tasks await (sampling::Profile::drawn).
enum class Drawing {
  kCounted,          // every sample on its own stack, as results count it
  kUnderAwaiters,    // each task under its awaiter's frames; every sample drawn once (per thread)
  kThroughChildren,  // kUnderAwaiters, and a task waiting only for tasks drawn under it is left
                     // out: its children draw its frames (whole-program trees, flame graphs)
};

struct ProfileView {
  sampling::FrameTable frames;  // the frames shown
  sampling::StackTrie stacks;   // over `frames`; a parent's id is always lower than its children's
  std::vector<sampling::StackId> node_of;  // the profile's stack id -> this view's stack id
  // Per thread (indexed like profile.threads): (stack, weight) sorted by stack, no zeros.
  std::vector<std::vector<std::pair<sampling::StackId, sampling::Weight>>> thread_weights;
  std::vector<sampling::Weight> self;       // per view stack, summed over threads
  std::vector<sampling::Weight> inclusive;  // per view stack: self plus all descendants
  std::vector<std::vector<sampling::StackId>> children;  // per view stack, heaviest first
  uint64_t total_samples = 0;
  double total_seconds = 0;
  // (prefix << 32 | stack) of the profile -> the view's node drawing `stack` under `prefix`.
  std::unordered_map<uint64_t, sampling::StackId> composed;
  bool tasks_linked = false;  // some sample is drawn under an awaiter
};

ProfileView make_view(const sampling::Profile& profile, bool merge_lines,
                      Drawing drawing = Drawing::kThroughChildren);

// The view's node for a profile stack drawn under `prefix` (a timeline span's).
sampling::StackId drawn_node(const ProfileView& view, sampling::StackId prefix,
                             sampling::StackId stack);

// Per frame of the view: does it belong to a chosen function (options.chosen, else the
// profile's `chosen` patterns; a malformed pattern matches nothing).
std::vector<bool> chosen_frames(const ProfileView& view, const sampling::Profile& profile,
                                const ExportOptions& options);

// Text for HTML and XML (the flame graph page, the SVG): markup characters escaped, control
// characters and bytes that are not UTF-8 (a name read from a target may hold anything)
// replaced, so the document always parses.
std::string markup_text(const std::string& text);

// "qualname (file:line)", or "qualname (file)" when lines are merged (line 0).
std::string frame_label(const sampling::FrameInfo& frame);

// The root-first display frame ids of `stack`.
std::vector<sampling::FrameId> frames_of(const ProfileView& view, sampling::StackId stack);

}  // namespace spyglass::report::detail
