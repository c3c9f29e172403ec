// Small text helpers shared by the command line's prompts and parsers.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace spyglass {

// ASCII letters in lower case (names of formats, file extensions).
std::string to_lower(std::string_view text);

// The words of a line, split on whitespace (no quoting).
std::vector<std::string> split_words(std::string_view line);

// The candidate nearest to `word` by edit distance, when it is close enough to be a likely typo
// (at most a third of the word's letters differ); empty otherwise.
std::string closest_word(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace spyglass
