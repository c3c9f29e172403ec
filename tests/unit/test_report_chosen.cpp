// The chosen set of a query and the figures of each function a pattern matched.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "report/chosen.h"

namespace spyglass::report {
namespace {

using sampling::FrameInfo;
using sampling::Profile;
using sampling::StackId;

// Frames: {qualname, file}; each stack's frames root first.
StackId stack_of(Profile& p, const std::vector<std::pair<std::string, std::string>>& frames) {
  StackId stack = sampling::kRootStack;
  int line = 1;
  for (const auto& [name, file] : frames) {
    stack = p.stacks.child(stack, p.frames.intern(FrameInfo{name, file, ++line, 1}));
  }
  return stack;
}

void add(Profile& p, uint32_t thread, StackId stack, int samples) {
  for (int i = 0; i < samples; ++i) p.add_sample(thread, stack, i * 0.01, 0.01);
}

const char* const kMain = "/srv/app/main.py";
const char* const kOrders = "/srv/app/shop/orders.py";
const char* const kUtil = "/srv/app/shop/util.py";

// main -> checkout -> total (recursing into checkout again), and main -> helper in util.
Profile shop_profile() {
  Profile p;
  uint32_t a = p.thread_index(1, 11, "MainThread");
  uint32_t b = p.thread_index(2, 12, "worker");
  add(p, a, stack_of(p, {{"<module>", kMain}, {"checkout", kOrders}}), 10);
  add(p, a, stack_of(p, {{"<module>", kMain}, {"checkout", kOrders}, {"total", kOrders}}), 20);
  add(p, b,
      stack_of(
          p,
          {{"<module>", kMain}, {"checkout", kOrders}, {"total", kOrders}, {"checkout", kOrders}}),
      30);
  add(p, b, stack_of(p, {{"<module>", kMain}, {"helper", kUtil}}), 40);
  return p;
}

const FunctionResult& row(const Results& r, const std::string& name) {
  for (const auto& f : r.functions) {
    if (f.name == name) return f;
  }
  throw std::runtime_error("no row " + name);
}

TEST(ChosenSet, OneJudgementPerFunction) {
  Profile p = shop_profile();
  ChosenSet chosen(p, {"shop.orders.*", "helper", "a:"});
  // checkout appears on two lines: one function.
  EXPECT_EQ(chosen.matched_functions(0).size(), 2u);
  EXPECT_EQ(chosen.matched_functions(1).size(), 1u);
  EXPECT_TRUE(chosen.matched_functions(2).empty());  // malformed: nothing
  for (sampling::FrameId f = 0; f < p.frames.size(); ++f) {
    const FrameInfo& info = p.frames.get(f);
    EXPECT_EQ(chosen.matches(f, 0), info.file == std::string(kOrders)) << info.function;
    EXPECT_EQ(chosen.chosen(f), info.function != "<module>") << info.function;
  }
}

TEST(ChosenResults, EachMatchedFunctionHasItsOwnFigures) {
  Profile p = shop_profile();
  ChosenSet chosen(p, {"shop.orders.*", "helper"});
  Results r;
  add_chosen_results(p, chosen, 100, 1.0, r);
  ASSERT_EQ(r.functions.size(), 2u);
  const FunctionResult& orders = row(r, "shop.orders.*");
  EXPECT_EQ(orders.figures.samples, 60u);  // each stack once, however deep the recursion
  EXPECT_NEAR(orders.figures.self_seconds, 0.6, 1e-9);
  ASSERT_EQ(orders.matches.size(), 2u);
  // Heaviest first: checkout is on 60 samples, total on 50.
  const MatchResult& checkout = orders.matches[0];
  EXPECT_EQ(checkout.function, "checkout");
  EXPECT_TRUE(checkout.has_figures);
  EXPECT_EQ(checkout.figures.samples, 60u);
  EXPECT_NEAR(checkout.figures.seconds, 0.6, 1e-9);
  EXPECT_NEAR(checkout.figures.self_seconds, 0.4, 1e-9);  // top of 10 + 30 samples
  EXPECT_NEAR(checkout.share, 0.6, 1e-9);
  EXPECT_GT(checkout.figures.error_seconds, 0);
  const MatchResult& total = orders.matches[1];
  EXPECT_EQ(total.figures.samples, 50u);
  EXPECT_NEAR(total.figures.self_seconds, 0.2, 1e-9);
  EXPECT_EQ(total.label, "total (/srv/app/shop/orders.py:1)");  // not on this disk: as given
  // A pattern that matched one function: the row is the function, no figures repeated.
  const FunctionResult& helper = row(r, "helper");
  ASSERT_EQ(helper.matches.size(), 1u);
  EXPECT_FALSE(helper.matches[0].has_figures);
  EXPECT_EQ(helper.figures.samples, 40u);
  EXPECT_TRUE(r.notes.empty());
}

TEST(ChosenResults, NoMatchNamesTheClosestSeen) {
  Profile p = shop_profile();
  ChosenSet chosen(p, {"chekout", "nonexistent"});
  Results r;
  add_chosen_results(p, chosen, 100, 1.0, r);
  ASSERT_EQ(r.notes.size(), 2u);
  EXPECT_EQ(r.notes[0], "'chekout' matched none of the 4 functions seen; closest: checkout");
  EXPECT_EQ(r.notes[1], "'nonexistent' matched none of the 4 functions seen");
  EXPECT_FALSE(row(r, "chekout").has_data);
}

TEST(ChosenSet, MainScriptIsModuleMain) {
  Profile p = shop_profile();
  EXPECT_EQ(main_script_file(p), kMain);
  ChosenSet chosen(p, {"__main__:<module>", "main:<module>"});
  EXPECT_EQ(chosen.matched_functions(0).size(), 1u);
  EXPECT_EQ(chosen.matched_functions(1).size(), 1u);
  // `python -m app`: below runpy's frames.
  Profile m;
  uint32_t t = m.thread_index(1, 1, "MainThread");
  add(m, t,
      stack_of(m, {{"_run_module_as_main", "/usr/lib/python3.12/runpy.py"},
                   {"_run_code", "/usr/lib/python3.12/runpy.py"},
                   {"<module>", "/srv/app/app/__main__.py"},
                   {"work", "/srv/app/app/__main__.py"}}),
      3);
  EXPECT_EQ(main_script_file(m), "/srv/app/app/__main__.py");
  EXPECT_EQ(ChosenSet(m, {"__main__:work"}).matched_functions(0).size(), 1u);
}

}  // namespace
}  // namespace spyglass::report
