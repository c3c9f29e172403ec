#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "report/results.h"

namespace spyglass::report {
namespace {

size_t columns_of(const std::string& line) {
  size_t width = 0;
  for (unsigned char c : line) {
    if ((c & 0xC0) != 0x80) ++width;
  }
  return width;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

MatchResult match(const std::string& function, const std::string& file, int line,
                  double seconds = -1) {
  MatchResult m;
  m.function = function;
  m.file = "/srv/" + file;
  m.line = line;
  m.label = function + " (" + file + ":" + std::to_string(line) + ")";
  if (seconds >= 0) {
    m.has_figures = true;
    m.figures = {seconds, seconds / 2, static_cast<uint64_t>(seconds * 1000), 0.05};
    m.share = seconds / 10;
  }
  return m;
}

Results sample_results() {
  Results r;
  r.mode = "wall";
  r.pid = 4242;
  r.python_version = "3.12.1";
  r.duration_seconds = 10;
  r.rate_hz = 1000;
  r.achieved_rate_hz = 998.5;
  r.samples = 9985;
  r.late_samples = 12;
  r.missed_samples = 1;

  FunctionResult missing;
  missing.name = "never_called";
  r.functions.push_back(missing);

  FunctionResult light;
  light.name = "disk_io";
  light.has_data = true;
  light.figures = {0.0123, 0.0100, 12, 0.004};
  light.share = 0.00123;
  light.matches = {match("disk_io", "app.py", 10)};
  r.functions.push_back(light);

  FunctionResult heavy;
  heavy.name = "handlers.*";
  heavy.has_data = true;
  heavy.figures = {4.5, 1.25, 4500, 0.1};
  heavy.share = 0.45;
  heavy.matches = {match("get", "handlers.py", 3, 3.0), match("post", "handlers.py", 9, 1.5)};
  ThreadFigures t;
  t.thread_id = 140000;
  t.native_id = 777;
  t.name = "MainThread";
  t.figures = heavy.figures;
  heavy.threads.push_back(t);
  r.functions.push_back(heavy);
  r.notes = {"never_called: no data (never seen running)"};
  return r;
}

void expect_aligned(const std::string& table) {
  auto lines = lines_of(table);
  ASSERT_GT(lines.size(), 3u);
  // The header comes first (one line, or more when narrow); every table line after it has the
  // same width.
  size_t first = 1;
  while (first < lines.size() && lines[first].rfind("┌", 0) != 0 &&
         lines[first].rfind("+-", 0) != 0) {
    ++first;
  }
  ASSERT_LT(first, lines.size());
  size_t width = columns_of(lines[first]);
  for (size_t i = first; i < lines.size(); ++i) {
    // Notes (and their wrapped lines, indented under the bullet's text) are not the table.
    if (lines[i].rfind("• ", 0) == 0 || lines[i].rfind("* ", 0) == 0 ||
        lines[i].rfind("  ", 0) == 0)
      continue;
    EXPECT_EQ(columns_of(lines[i]), width) << "line " << i << ": " << lines[i];
  }
}

TEST(ReportTable, SortsByInclusiveTimeWithNoDataLast) {
  std::string table = render_table(sample_results(), TableStyle{});
  auto heavy = table.find("handlers.*");
  auto light = table.find("disk_io");
  auto missing = table.find("│ never_called ");
  ASSERT_NE(heavy, std::string::npos);
  ASSERT_NE(light, std::string::npos);
  ASSERT_NE(missing, std::string::npos);
  EXPECT_LT(heavy, light);
  EXPECT_LT(light, missing);
  EXPECT_NE(table.find("no data"), std::string::npos);
  expect_aligned(table);
}

TEST(ReportTable, HeaderAndColumns) {
  std::string table = render_table(sample_results(), TableStyle{});
  auto lines = lines_of(table);
  EXPECT_NE(lines[0].find("mode wall"), std::string::npos);
  EXPECT_NE(lines[0].find("1 kHz requested, 998 Hz achieved"), std::string::npos);
  EXPECT_NE(lines[0].find("9,985 samples (12 late, 1 missed)"), std::string::npos);
  for (const char* title :
       {"Function", "Total (inclusive)", "± error", "Self", "Share", "Samples"}) {
    EXPECT_NE(lines[2].find(title), std::string::npos) << title;
  }
  EXPECT_NE(table.find("4.5 s"), std::string::npos);
  EXPECT_NE(table.find("± 100 ms"), std::string::npos);
  EXPECT_NE(table.find("45.0%"), std::string::npos);
  EXPECT_NE(table.find("  ↳ get (handlers.py:3)"), std::string::npos);
  EXPECT_NE(table.find("  ↳ post (handlers.py:9)"), std::string::npos);
  // A single match is the row itself: not listed again.
  EXPECT_EQ(table.find("↳ disk_io"), std::string::npos);
  EXPECT_NE(table.find("• never_called: no data"), std::string::npos);
}

// A glob that matched many functions: the heaviest as rows, the rest folded into one line.
Results glob_results(size_t count) {
  Results r = sample_results();
  FunctionResult& heavy = r.functions.back();
  heavy.matches.clear();
  for (size_t i = 0; i < count; ++i) {
    std::string name = "Handler" + std::to_string(i) + ".dispatch_request_with_a_long_name";
    MatchResult m = match(name, "site/handlers/requests.py", static_cast<int>(10 * i + 1),
                          4.0 / static_cast<double>(i + 1));
    m.label = name + " (site/handlers/requests.py:" + std::to_string(10 * i + 1) + ")";
    heavy.matches.push_back(m);
  }
  return r;
}

TEST(ReportTable, GlobRowsTopAndFolded) {
  TableStyle style;
  style.max_matches = 3;
  std::string table = render_table(glob_results(12), style);
  EXPECT_NE(table.find("handlers.* (12 functions)"), std::string::npos) << table;
  EXPECT_NE(table.find("  ↳ Handler0.dispatch_request_with_a_long_name "
                       "(site/handlers/requests.py:1)"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("↳ Handler2."), std::string::npos);
  EXPECT_EQ(table.find("↳ Handler3."), std::string::npos);
  EXPECT_NE(table.find("  … 9 more"), std::string::npos);
  // The folded line's Self sums theirs: 4/(i+1)/2 for i = 3..11.
  double self = 0;
  for (int i = 3; i < 12; ++i) self += 4.0 / (i + 1) / 2;
  EXPECT_NE(table.find(format_seconds(self)), std::string::npos) << table;
  expect_aligned(table);
}

TEST(ReportTable, FitsANarrowTerminal) {
  // About 68 columns is the narrowest: the figures take 52 here, the names at least 16.
  for (size_t width : {80u, 100u, 70u}) {
    TableStyle style;
    style.max_width = width;
    style.per_thread = true;
    Results results = glob_results(4);
    results.functions.back().name = "a_pattern_name_that_is_long_enough_to_be_cut.*";
    // Notes wrap too (before: one line of 174 columns under an 80-column table).
    results.notes.push_back(
        "late: samples taken over half a period after their time; missed: sampling times "
        "skipped because a sample took too long (their time goes to the next sample, nothing "
        "is lost)");
    std::string table = render_table(results, style);
    EXPECT_NE(table.find("nothing is lost"), std::string::npos) << table;
    for (const std::string& line : lines_of(table)) {
      EXPECT_LE(columns_of(line), width) << line << "\n" << table;
    }
    expect_aligned(table);
    // Narrow tables keep the file's name and cut the qualified name in the middle.
    if (width == 80) {
      EXPECT_NE(table.find("  ↳ Han…g_name (requests.py) "), std::string::npos) << table;
      EXPECT_NE(table.find("  ↳ Han…g_name (requests.py) "),
                table.rfind("  ↳ Han…g_name (requests.py) "));
      EXPECT_NE(table.find("│ Function"), std::string::npos);
      EXPECT_NE(table.find(" Total "), std::string::npos);  // not "Total (inclusive)"
    }
  }
  // Wide enough: nothing changes.
  TableStyle wide;
  wide.max_width = 400;
  EXPECT_EQ(render_table(glob_results(4), wide), render_table(glob_results(4), TableStyle{}));
}

TEST(ReportTable, AsciiHasNoMultibyteCharacters) {
  TableStyle style;
  style.unicode = false;
  style.per_thread = true;
  std::string table = render_table(sample_results(), style);
  for (unsigned char c : table) ASSERT_LT(c, 0x80) << table;
  EXPECT_NE(table.find("+/- error"), std::string::npos);
  EXPECT_NE(table.find("MainThread (777)"), std::string::npos);
  expect_aligned(table);
}

TEST(ReportTable, PerThreadRowsAligned) {
  TableStyle style;
  style.per_thread = true;
  std::string table = render_table(sample_results(), style);
  EXPECT_NE(table.find("└ MainThread (777)"), std::string::npos);
  expect_aligned(table);
}

TEST(ReportTable, ExactModeColumns) {
  Results r;
  r.mode = "exact";
  r.duration_seconds = 2;
  FunctionResult f;
  f.name = "Worker.process";
  f.has_data = true;
  f.figures.seconds = 1.5;
  f.figures.self_seconds = 0.5;
  f.figures.calls = 1500;
  f.figures.latency = Latency{0.001, 0.0005, 0.004, 0.0009, 0.002, 0.0035};
  r.functions.push_back(f);
  FunctionResult none;
  none.name = "idle";
  r.functions.push_back(none);
  std::string table = render_table(r, TableStyle{});
  for (const char* title : {"Calls", "Total", "Self", "Mean", "p50", "p90", "p99", "Max"}) {
    EXPECT_NE(table.find(title), std::string::npos) << title;
  }
  EXPECT_EQ(table.find("Samples"), std::string::npos);
  EXPECT_EQ(table.find("rate"), std::string::npos);
  EXPECT_NE(table.find("1,500"), std::string::npos);
  EXPECT_NE(table.find("3.5 ms"), std::string::npos);
  EXPECT_LT(table.find("Worker.process"), table.find("idle"));
  expect_aligned(table);
}

TEST(ReportTable, EmptyResults) {
  std::string table = render_table(Results{}, TableStyle{});
  EXPECT_NE(table.find("no functions chosen"), std::string::npos);
}

TEST(ReportJson, KeysAndValues) {
  Results r = sample_results();
  r.target_exited = true;
  auto j = to_json(r);
  for (const char* key :
       {"functions", "mode", "pid", "python_version", "duration_seconds", "rate_hz",
        "achieved_rate_hz", "samples", "late_samples", "missed_samples", "target_exited"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["mode"], "wall");
  EXPECT_EQ(j["pid"], 4242);
  EXPECT_EQ(j["target_exited"], true);
  ASSERT_EQ(j["functions"].size(), 3u);
  // The order chosen, not the table's order.
  EXPECT_EQ(j["functions"][0]["name"], "never_called");
  EXPECT_EQ(j["functions"][0]["has_data"], false);
  const auto& heavy = j["functions"][2];
  for (const char* key : {"name", "seconds", "self_seconds", "samples", "error_seconds", "share",
                          "has_data", "matches", "threads"}) {
    EXPECT_TRUE(heavy.contains(key)) << key;
  }
  EXPECT_DOUBLE_EQ(heavy["seconds"].get<double>(), 4.5);
  EXPECT_EQ(heavy["samples"], 4500);
  ASSERT_EQ(heavy["matches"].size(), 2u);
  const auto& get = heavy["matches"][0];
  EXPECT_EQ(get["label"], "get (handlers.py:3)");
  EXPECT_EQ(get["function"], "get");
  EXPECT_EQ(get["file"], "/srv/handlers.py");
  EXPECT_EQ(get["line"], 3);
  EXPECT_DOUBLE_EQ(get["seconds"].get<double>(), 3.0);
  EXPECT_EQ(get["samples"], 3000);
  EXPECT_TRUE(get.contains("error_seconds") && get.contains("share"));
  // Without figures (exact mode lists its matches): names only.
  const auto& light = j["functions"][1]["matches"][0];
  EXPECT_EQ(light["label"], "disk_io (app.py:10)");
  EXPECT_FALSE(light.contains("seconds"));
  const auto& thread = heavy["threads"][0];
  for (const char* key :
       {"thread_id", "native_id", "name", "seconds", "self_seconds", "samples", "error_seconds"}) {
    EXPECT_TRUE(thread.contains(key)) << key;
  }
  EXPECT_EQ(thread["native_id"], 777);
  EXPECT_FALSE(heavy.contains("calls"));
}

TEST(ReportJson, ExactFields) {
  Results r;
  r.mode = "exact";
  FunctionResult f;
  f.name = "run_async";
  f.has_data = true;
  f.figures.calls = 3;
  f.figures.latency = Latency{};
  f.figures.coroutine_wall_seconds = 0.25;
  r.functions.push_back(f);
  auto j = to_json(r)["functions"][0];
  EXPECT_EQ(j["calls"], 3);
  EXPECT_TRUE(j["latency"].contains("p99"));
  EXPECT_DOUBLE_EQ(j["coroutine_wall_seconds"].get<double>(), 0.25);
}

TEST(ReportUnits, FormatSeconds) {
  EXPECT_EQ(format_seconds(0), "0 s");
  EXPECT_EQ(format_seconds(1.234), "1.23 s");
  EXPECT_EQ(format_seconds(0.0456), "45.6 ms");
  EXPECT_EQ(format_seconds(0.000789), "789 µs");
  EXPECT_EQ(format_seconds(0.000789, false), "789 us");
  EXPECT_EQ(format_seconds(2.5e-8), "25 ns");
  EXPECT_EQ(format_seconds(125), "2 min 05 s");
  EXPECT_EQ(format_seconds(3725), "1 h 02 min");
}

TEST(ReportUnits, TerminalIsUtf8) {
  setenv("LC_ALL", "en_US.UTF-8", 1);
  EXPECT_TRUE(terminal_is_utf8());
  setenv("LC_ALL", "C", 1);
  EXPECT_FALSE(terminal_is_utf8());
  unsetenv("LC_ALL");
  unsetenv("LC_CTYPE");
  setenv("LANG", "C.utf8", 1);
  EXPECT_TRUE(terminal_is_utf8());
}

TEST(ReportError, SamplingErrorBound) {
  EXPECT_EQ(sampling_error_seconds(0, 0, 10), 0);
  // Never seen in 10,000 samples over 10 s: the upper bound is ~3.84/N of the time, plus 1 ms.
  double none = sampling_error_seconds(0, 10000, 10);
  EXPECT_NEAR(none, 10 * 3.84 / 10000 + 0.001, 0.0005);
  // Half the samples: ~1.96 * sqrt(0.25 / N) of the time.
  double half = sampling_error_seconds(5000, 10000, 10);
  EXPECT_NEAR(half, 10 * 1.96 * 0.005 + 0.001, 0.001);
  // More samples, smaller bound; symmetric in p and 1-p.
  EXPECT_LT(sampling_error_seconds(50000, 100000, 10), half);
  EXPECT_NEAR(sampling_error_seconds(2000, 10000, 10), sampling_error_seconds(8000, 10000, 10),
              1e-12);
}

}  // namespace
}  // namespace spyglass::report

namespace spyglass::report {
namespace {

// Simulated sampling: each of N samples sees the function with probability p. The bound must
// cover the true time in about 95% of runs (more, with the added period).
TEST(ReportError, SamplingBoundCoverage) {
  uint64_t state = 42;
  auto uniform = [&]() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(state >> 11) / 9007199254740992.0;
  };
  const double duration = 10;
  for (uint64_t n : {200u, 2000u}) {
    for (double p : {0.002, 0.05, 0.3, 0.5, 0.97}) {
      const int runs = 1000;
      int covered = 0;
      for (int run = 0; run < runs; ++run) {
        uint64_t hits = 0;
        for (uint64_t i = 0; i < n; ++i) hits += uniform() < p;
        double estimate = duration * static_cast<double>(hits) / static_cast<double>(n);
        double bound = sampling_error_seconds(hits, n, duration);
        covered += std::abs(estimate - p * duration) <= bound;
      }
      EXPECT_GE(covered, runs * 93 / 100) << "n=" << n << " p=" << p;
    }
  }
}

}  // namespace
}  // namespace spyglass::report
