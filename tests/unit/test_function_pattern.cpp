#include "sampling/function_pattern.h"

#include <gtest/gtest.h>

#include "common/error.h"

using spyglass::sampling::FunctionPattern;
using spyglass::sampling::module_names_for_file;

TEST(FunctionPattern, BareNameMatchesFunctionsAndMethods) {
  FunctionPattern p("process");
  EXPECT_TRUE(p.matches("process", "/app/w.py"));
  EXPECT_TRUE(p.matches("Worker.process", "/app/w.py"));
  EXPECT_FALSE(p.matches("process_all", "/app/w.py"));
}

TEST(FunctionPattern, ClassMethod) {
  FunctionPattern p("Worker.process");
  EXPECT_TRUE(p.matches("Worker.process", "/app/w.py"));
  EXPECT_FALSE(p.matches("Other.process", "/app/w.py"));
  EXPECT_FALSE(p.matches("process", "/app/w.py"));
}

TEST(FunctionPattern, ModuleForms) {
  EXPECT_TRUE(FunctionPattern("w:Worker.process").matches("Worker.process", "/app/w.py"));
  EXPECT_TRUE(FunctionPattern("app.w:Worker.process").matches("Worker.process", "/srv/app/w.py"));
  EXPECT_FALSE(FunctionPattern("x:Worker.process").matches("Worker.process", "/app/w.py"));
  EXPECT_TRUE(FunctionPattern("w.Worker.process").matches("Worker.process", "/app/w.py"));
  EXPECT_TRUE(FunctionPattern("pkg:f").matches("f", "/srv/pkg/__init__.py"));
}

TEST(FunctionPattern, FileForm) {
  EXPECT_TRUE(FunctionPattern("app/w.py:process").matches("Worker.process", "/srv/app/w.py"));
  EXPECT_TRUE(FunctionPattern("w.py:Worker.process").matches("Worker.process", "/srv/app/w.py"));
  EXPECT_FALSE(FunctionPattern("v.py:process").matches("Worker.process", "/srv/app/w.py"));
}

TEST(FunctionPattern, Globs) {
  FunctionPattern p("handlers.*");
  EXPECT_TRUE(p.matches("get", "/srv/handlers.py"));
  EXPECT_TRUE(p.matches("Order.post", "/srv/handlers.py"));
  EXPECT_FALSE(p.matches("get", "/srv/models.py"));
  EXPECT_TRUE(FunctionPattern("heavy_*").matches("heavy_computation", "/x.py"));
}

TEST(FunctionPattern, LocalsAreIgnored) {
  EXPECT_TRUE(FunctionPattern("outer.inner").matches("outer.<locals>.inner", "/x.py"));
}

TEST(FunctionPattern, RejectsMalformed) {
  EXPECT_THROW(FunctionPattern(""), spyglass::Error);
  EXPECT_THROW(FunctionPattern("a:"), spyglass::Error);
  EXPECT_THROW(FunctionPattern("a b"), spyglass::Error);
}

TEST(ModuleNames, FromPath) {
  auto names = module_names_for_file("/srv/app/handlers/orders.py");
  ASSERT_EQ(names.size(), 4u);
  EXPECT_EQ(names[0], "srv.app.handlers.orders");
  EXPECT_EQ(names[3], "orders");
}
