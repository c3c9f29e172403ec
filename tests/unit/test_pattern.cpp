// The pattern core against the shared table (tests/programs/patterns/table.json), as each mode
// sees a function: sampling knows its file (the module names are guessed from the path),
// exact mode its real __name__. The same table runs against real processes in
// tests/integration/test_patterns.py and tests/exact/test_patterns.py.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "pattern/pattern.h"

namespace spyglass::pattern {
namespace {

const char* const kTable = SPYGLASS_TESTS_DIR "/programs/patterns/table.json";

nlohmann::json load_table() {
  std::ifstream in(kTable);
  EXPECT_TRUE(in.good()) << kTable;
  return nlohmann::json::parse(in);
}

struct Function {
  std::string id, qualname, file;
  std::vector<std::string> sampling_modules, exact_modules;
};

std::vector<Function> table_functions(const nlohmann::json& table) {
  std::vector<Function> out;
  for (const auto& [id, f] : table["functions"].items()) {
    Function fn;
    fn.id = id;
    fn.qualname = f["qualname"];
    fn.file = "/srv/app/" + f["file"].get<std::string>();
    const std::string module = f["module"];
    fn.sampling_modules = module_names_for_file(fn.file);
    // The sampler knows the main script's file from the stacks (report::main_script_file).
    if (module == "__main__") fn.sampling_modules.push_back("__main__");
    fn.exact_modules = module_names_for_module(module, fn.file);
    out.push_back(std::move(fn));
  }
  return out;
}

TEST(PatternTable, EveryRowInBothModes) {
  const nlohmann::json table = load_table();
  const auto functions = table_functions(table);
  ASSERT_GE(table["rows"].size(), 30u);
  for (const auto& row : table["rows"]) {
    const std::string text = row["pattern"];
    std::set<std::string> expected;
    for (const auto& id : row["matches"]) expected.insert(id.get<std::string>());
    const Pattern pattern(text);
    std::set<std::string> sampling, exact;
    for (const Function& f : functions) {
      if (pattern.matches({f.qualname, f.file, &f.sampling_modules})) sampling.insert(f.id);
      if (pattern.matches({f.qualname, f.file, &f.exact_modules})) exact.insert(f.id);
    }
    EXPECT_EQ(sampling, expected) << "sampling, pattern " << text;
    EXPECT_EQ(exact, expected) << "exact mode, pattern " << text;
  }
}

TEST(PatternTable, MalformedAreRefusedWithTheReason) {
  const nlohmann::json table = load_table();
  for (const auto& item : table["malformed"]) {
    const std::string text = item;
    try {
      Pattern pattern(text);
      ADD_FAILURE() << "accepted '" << text << "'";
    } catch (const PatternError& e) {
      EXPECT_NE(std::string(e.what()).find("is not a function pattern"), std::string::npos);
    }
  }
  EXPECT_THROW(Pattern(""), PatternError);
}

TEST(Glob, Forms) {
  EXPECT_TRUE(glob_match("a*c", "abc"));
  EXPECT_TRUE(glob_match("a*", "a.b/c"));  // crosses dots and slashes
  EXPECT_TRUE(glob_match("a?c", "abc"));
  EXPECT_TRUE(glob_match("[ab]c", "bc"));
  EXPECT_TRUE(glob_match("[a-c]x", "bx"));
  EXPECT_TRUE(glob_match("[!a]x", "bx"));
  EXPECT_FALSE(glob_match("[!a]x", "ax"));
  EXPECT_TRUE(glob_match("a[b", "a[b"));  // unterminated class: literal
  EXPECT_FALSE(glob_match("a*c", "abd"));
  EXPECT_TRUE(glob_match("*", ""));
  // No recursion: a long text and many stars stay linear enough.
  EXPECT_FALSE(glob_match("*a*a*a*a*a*a*a*b", std::string(5000, 'a')));
}

TEST(ModuleNames, FromPathAndName) {
  auto names = module_names_for_file("/srv/app/handlers/orders.py");
  ASSERT_EQ(names.size(), 4u);
  EXPECT_EQ(names[0], "srv.app.handlers.orders");
  EXPECT_EQ(names[3], "orders");
  EXPECT_EQ(module_names_for_file("/srv/pkg/__init__.py").back(), "pkg");
  EXPECT_EQ(module_names_for_module("a.b.c", "/x/a/b/c.py"),
            (std::vector<std::string>{"a.b.c", "b.c", "c"}));
  auto main = module_names_for_module("__main__", "/srv/tool.py");
  EXPECT_EQ(main.front(), "__main__");
  EXPECT_EQ(main.back(), "tool");
}

TEST(ShortFile, FromTheTopPackage) {
  const std::string polytools = "/v/lib/python3.12/site-packages/sympy/polys/polytools.py";
  EXPECT_EQ(short_file(polytools, 2), "sympy/polys/polytools.py");
  EXPECT_EQ(short_file(polytools, -1), "sympy/polys/polytools.py");  // after site-packages/
  EXPECT_EQ(short_file("/usr/lib/python3.11/json/__init__.py", -1), "json/__init__.py");
  EXPECT_EQ(short_file("/home/me/app.py", -1), "/home/me/app.py");
  EXPECT_EQ(short_file("/home/me/app.py", 0), "app.py");
  EXPECT_EQ(short_file("app.py", 3), "app.py");
  EXPECT_EQ(package_depth_of_module("sympy.polys.polytools", polytools), 2);
  EXPECT_EQ(package_depth_of_module("json", "/usr/lib/python3.11/json/__init__.py"), 1);
  EXPECT_EQ(package_depth_of_module("__main__", "/srv/tool.py"), -1);
  EXPECT_EQ(describe("Poly.factor_list", "sympy/polys/polytools.py", 3400),
            "Poly.factor_list (sympy/polys/polytools.py:3400)");
}

TEST(ClosestNames, TyposAndParts) {
  const std::vector<std::string> seen{"heavy_computation", "disk_io", "Worker.process",
                                      "network_request", "main"};
  EXPECT_EQ(closest_names("heavy_computaton", seen), std::vector<std::string>{"heavy_computation"});
  EXPECT_EQ(closest_names("app:Worker.proces", seen), std::vector<std::string>{"Worker.process"});
  EXPECT_EQ(closest_names("computation", seen), std::vector<std::string>{"heavy_computation"});
  EXPECT_TRUE(closest_names("nonexistent", seen).empty());
  EXPECT_TRUE(closest_names("*", seen).empty());
}

}  // namespace
}  // namespace spyglass::pattern
