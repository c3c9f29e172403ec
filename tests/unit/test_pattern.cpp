#include <gtest/gtest.h>

#include "pattern/pattern.h"

namespace spyglass::pattern {
namespace {

TEST(Pattern, Placeholder) {
  EXPECT_TRUE(glob_match("a*", "abc"));
}

}  // namespace
}  // namespace spyglass::pattern
