#include <gtest/gtest.h>
#include <zlib.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "report/export.h"

namespace spyglass::report {
namespace {

using sampling::FrameInfo;
using sampling::Profile;
using sampling::StackId;

StackId stack_of(Profile& p, const std::vector<FrameInfo>& frames) {
  StackId stack = sampling::kRootStack;
  for (const auto& f : frames) stack = p.stacks.child(stack, p.frames.intern(f));
  return stack;
}

// main -> work (two lines) -> leaf, on two threads, with an empty-stack sample.
Profile small_profile() {
  Profile p;
  p.run.pid = 99;
  p.run.rate_hz = 100;
  p.run.duration_seconds = 0.1;
  p.chosen = {"work"};
  const FrameInfo main_frame{"main", "/app/m.py", 3, 1};
  const FrameInfo work_a{"work", "/app/m.py", 11, 10};
  const FrameInfo work_b{"work", "/app/m.py", 12, 10};
  const FrameInfo leaf{"Leaf.run", "/app/leaf.py", 5, 4};
  StackId s1 = stack_of(p, {main_frame, work_a});
  StackId s2 = stack_of(p, {main_frame, work_b, leaf});
  StackId s3 = stack_of(p, {main_frame});
  uint32_t t0 = p.thread_index(1, 101, "MainThread");
  uint32_t t1 = p.thread_index(2, 102, "");
  double t = 0;
  for (StackId s : {s1, s1, s2, s3, s2}) {  // each sample stands for the 10 ms after it
    p.add_sample(t0, s, t, 0.01);
    p.add_sample(t1, s == s3 ? sampling::kRootStack : s1, t, 0.01);
    t += 0.01;
  }
  return p;
}

std::string write(const Profile& p, Format format, ExportOptions options = {}) {
  std::ostringstream out;
  write_profile(p, format, options, out);
  return out.str();
}

TEST(ExportFormat, NamesAndExtensions) {
  EXPECT_EQ(format_from_name("folded"), Format::kCollapsed);
  EXPECT_EQ(format_from_name("Speedscope"), Format::kSpeedscope);
  EXPECT_EQ(format_from_name("perfetto"), Format::kChromeTrace);
  EXPECT_EQ(format_from_name("pprof"), Format::kPprof);
  EXPECT_EQ(format_from_name("html"), Format::kFlameGraphHtml);
  EXPECT_EQ(format_from_name("svg"), Format::kFlameGraphSvg);
  EXPECT_FALSE(format_from_name("table").has_value());
  EXPECT_EQ(format_from_extension("out/x.speedscope.json"), Format::kSpeedscope);
  EXPECT_EQ(format_from_extension("x.trace.json"), Format::kChromeTrace);
  EXPECT_EQ(format_from_extension("x.pb.gz"), Format::kPprof);
  EXPECT_EQ(format_from_extension("X.HTML"), Format::kFlameGraphHtml);
  EXPECT_EQ(format_from_extension("x.folded"), Format::kCollapsed);
  EXPECT_FALSE(format_from_extension("x.json").has_value());
  EXPECT_EQ(format_from_extension("flame.SVG"), Format::kFlameGraphSvg);
  EXPECT_FALSE(format_from_extension("x.txt").has_value());  // the table's (the CLI's)
  EXPECT_EQ(format_from_name_or_extension("pprof", "x.html"), Format::kPprof);
  EXPECT_EQ(format_from_name_or_extension("", "x.html"), Format::kFlameGraphHtml);
  for (Format f : {Format::kCollapsed, Format::kSpeedscope, Format::kChromeTrace, Format::kPprof,
                   Format::kFlameGraphHtml, Format::kFlameGraphSvg}) {
    EXPECT_EQ(format_from_name(format_name(f)), f);
  }
}

TEST(ExportPattern, ChosenSetMatchesByContent) {
  Profile p;
  p.frames.intern(FrameInfo{"Worker.process", "/srv/app/handlers.py", 3, 1});
  ChosenSet chosen(p, {"Worker.process", "handlers.*", "other.*", "a:"});
  FrameInfo merged{"Worker.process", "/srv/app/handlers.py", 0, 1};  // lines merged: line 0
  EXPECT_TRUE(chosen.chosen(merged));
  EXPECT_TRUE(chosen.matches(merged, 0));
  EXPECT_TRUE(chosen.matches(merged, 1));
  EXPECT_FALSE(chosen.matches(merged, 2));
  EXPECT_FALSE(chosen.matches(merged, 3));  // malformed: matches nothing
  EXPECT_FALSE(chosen.chosen(FrameInfo{"Worker.process", "/srv/app/other.py", 0, 1}));
}

TEST(ExportCollapsed, LinesRootFirstAndSummed) {
  std::string text = write(small_profile(), Format::kCollapsed);
  EXPECT_EQ(text,
            "(no Python frames) 1\n"
            "main (/app/m.py:3) 1\n"
            "main (/app/m.py:3);work (/app/m.py:11) 6\n"
            "main (/app/m.py:3);work (/app/m.py:12);Leaf.run (/app/leaf.py:5) 2\n");
}

TEST(ExportCollapsed, MergeLinesAndThreadRoots) {
  ExportOptions options;
  options.merge_lines = true;
  options.thread_roots = true;
  std::string text = write(small_profile(), Format::kCollapsed, options);
  EXPECT_EQ(text,
            "thread 102 1\n"
            "thread 102;main (/app/m.py);work (/app/m.py) 4\n"
            "thread MainThread;main (/app/m.py) 1\n"
            "thread MainThread;main (/app/m.py);work (/app/m.py) 2\n"
            "thread MainThread;main (/app/m.py);work (/app/m.py);Leaf.run (/app/leaf.py) 2\n");
}

TEST(ExportSpeedscope, SampledProfilePerThread) {
  auto doc = nlohmann::json::parse(write(small_profile(), Format::kSpeedscope));
  EXPECT_EQ(doc["$schema"], "https://www.speedscope.app/file-format-schema.json");
  ASSERT_EQ(doc["profiles"].size(), 2u);
  EXPECT_EQ(doc["shared"]["frames"].size(), 4u);
  const auto& main = doc["profiles"][0];
  EXPECT_EQ(main["type"], "sampled");
  EXPECT_EQ(main["unit"], "seconds");
  // Time order: s1 (2 samples, one span), s2, s3, s2.
  ASSERT_EQ(main["samples"].size(), 4u);
  EXPECT_EQ(main["samples"][0].size(), 2u);
  EXPECT_EQ(main["samples"][1].size(), 3u);
  EXPECT_NEAR(main["weights"][0].get<double>(), 0.02, 1e-9);
  EXPECT_NEAR(main["endValue"].get<double>() - main["startValue"].get<double>(), 0.05, 1e-9);
  const auto& frame = doc["shared"]["frames"][main["samples"][1][2].get<int>()];
  EXPECT_EQ(frame["name"], "Leaf.run");
  EXPECT_EQ(frame["file"], "/app/leaf.py");
  EXPECT_EQ(frame["line"], 5);
}

TEST(ExportSpeedscope, AggregatedWhenTimelineIncomplete) {
  Profile p = small_profile();
  p.timeline.resize(1);
  auto doc = nlohmann::json::parse(write(p, Format::kSpeedscope));
  double total = 0;
  for (const auto& profile : doc["profiles"]) {
    for (const auto& w : profile["weights"]) total += w.get<double>();
  }
  EXPECT_NEAR(total, 0.1, 1e-9);
}

TEST(ExportChrome, BalancedEventsPerThread) {
  auto doc = nlohmann::json::parse(write(small_profile(), Format::kChromeTrace));
  std::map<int, std::vector<std::string>> open;
  std::map<int, double> last;
  int thread_names = 0;
  for (const auto& e : doc["traceEvents"]) {
    std::string ph = e["ph"];
    if (ph == "M") {
      thread_names += e["name"] == "thread_name";
      continue;
    }
    int tid = e["tid"];
    double ts = e["ts"];
    EXPECT_GE(ts, last[tid]);
    last[tid] = ts;
    if (ph == "B") {
      open[tid].push_back(e["name"]);
    } else {
      ASSERT_EQ(ph, "E");
      ASSERT_FALSE(open[tid].empty());
      open[tid].pop_back();
    }
  }
  EXPECT_EQ(thread_names, 2);
  for (const auto& [tid, frames] : open) EXPECT_TRUE(frames.empty()) << tid;
  EXPECT_NEAR(last[101], 50000, 1e-6);  // microseconds
}

TEST(ExportChrome, ExactCallsAsCompleteEvents) {
  std::vector<TimedCall> calls{{"inner", "a.py", 3, 7, 0.5, 0.25}, {"outer", "a.py", 1, 7, 0.5, 1}};
  std::vector<sampling::ThreadInfo> threads{{1, 7, "MainThread"}};
  std::ostringstream out;
  write_chrome_trace_calls(calls, threads, 42, {}, out);
  auto doc = nlohmann::json::parse(out.str());
  const auto& events = doc["traceEvents"];
  ASSERT_EQ(events.size(), 4u);  // process name, thread name, two calls
  EXPECT_EQ(events[1]["args"]["name"], "MainThread");
  // Same start: the longer (outer) call first.
  EXPECT_EQ(events[2]["name"], "outer");
  EXPECT_EQ(events[2]["ph"], "X");
  EXPECT_DOUBLE_EQ(events[2]["ts"].get<double>(), 500000);
  EXPECT_DOUBLE_EQ(events[2]["dur"].get<double>(), 1000000);
  EXPECT_EQ(events[3]["name"], "inner");
  EXPECT_EQ(events[3]["tid"], 7);
  EXPECT_EQ(events[3]["pid"], 42);
}

std::string gunzip(const std::string& data) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out(1 << 20, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  inflateEnd(&z);
  return out;
}

TEST(ExportPprof, GzippedProfileWithStrings) {
  std::string data = write(small_profile(), Format::kPprof);
  ASSERT_GE(data.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(data[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(data[1]), 0x8b);
  std::string raw = gunzip(data);
  for (const char* s : {"samples", "count", "wall", "nanoseconds", "Leaf.run", "/app/leaf.py",
                        "MainThread", "(no Python frames)"}) {
    EXPECT_NE(raw.find(s), std::string::npos) << s;
  }
  // The first field is sample_type (field 1, length-delimited): tag 0x0a.
  EXPECT_EQ(static_cast<unsigned char>(raw[0]), 0x0a);
}

TEST(ExportFlameGraph, SelfContainedPage) {
  Profile p = small_profile();
  p.frames.intern(FrameInfo{"unused</script>", "x.py", 1, 1});
  ExportOptions options;
  options.title = "<title & test>";
  const ChosenSet chosen(p, {"Leaf.run"});
  options.chosen = &chosen;
  std::string html = write(p, Format::kFlameGraphHtml, options);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_GT(html.size(), 200'000u);  // d3 and d3-flame-graph are inside
  EXPECT_NE(html.find("&lt;title &amp; test&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<title & test>"), std::string::npos);
  auto data_start = html.find("id=\"spyglass-data\">");
  ASSERT_NE(data_start, std::string::npos);
  auto data_end = html.find("</script>", data_start);
  auto data = nlohmann::json::parse(html.substr(data_start + 19, data_end - data_start - 19));
  EXPECT_EQ(data["name"], "all");
  EXPECT_EQ(data["value"], 10);
  ASSERT_EQ(data["children"].size(), 1u);
  const auto& main = data["children"][0];
  EXPECT_EQ(main["function"], "main");
  EXPECT_EQ(main["value"], 9);
  // work:11 (6) before work:12 (2): heaviest first; the leaf under work:12 is chosen.
  EXPECT_EQ(main["children"][0]["value"], 6);
  EXPECT_EQ(main["children"][1]["children"][0]["chosen"], true);
  EXPECT_FALSE(main["children"][0].contains("chosen"));
}

TEST(ExportSvg, StaticFlameGraph) {
  Profile p = small_profile();
  // Names from a target may hold markup and bytes that are not UTF-8.
  auto odd = p.frames.intern(FrameInfo{"<lambda>&\xff", "x.py", 1, 1});
  p.add_sample(0, p.stacks.child(sampling::kRootStack, odd), 0.2, 0.01);
  ExportOptions options;
  options.title = "<title & test>";
  std::string svg = write(p, Format::kFlameGraphSvg, options);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_EQ(svg.find("<script"), std::string::npos) << "static: no script";
  EXPECT_NE(svg.find("&lt;title &amp; test&gt;"), std::string::npos);
  EXPECT_NE(svg.find("&lt;lambda&gt;&amp;\xef\xbf\xbd"), std::string::npos);
  EXPECT_EQ(svg.find("\xff"), std::string::npos);
  // The profile's chosen pattern ("work") is blue; main is not.
  auto work = svg.find("<title>work (/app/m.py:11)");
  ASSERT_NE(work, std::string::npos);
  EXPECT_NE(svg.substr(work, 300).find("fill=\"#3b7ddd\""), std::string::npos);
  auto main = svg.find("<title>main (/app/m.py:3)");
  ASSERT_NE(main, std::string::npos);
  EXPECT_EQ(svg.substr(main, 300).find("#3b7ddd"), std::string::npos);
  // Every element opened is closed: as many <g> as </g>.
  size_t open = 0, close = 0;
  for (size_t at = 0; (at = svg.find("<g ", at)) != std::string::npos; ++at) ++open;
  for (size_t at = 0; (at = svg.find("</g>", at)) != std::string::npos; ++at) ++close;
  EXPECT_EQ(open, close);
  EXPECT_GT(open, 5u);
}

TEST(ExportDeep, TwentyThousandFramesEveryFormat) {
  Profile p;
  StackId stack = stack_of(p, {{"main", "m.py", 1, 1}});
  auto frame = p.frames.intern(FrameInfo{"recurse", "m.py", 5, 4});
  for (int i = 0; i < 20000; ++i) stack = p.stacks.child(stack, frame);
  uint32_t t = p.thread_index(1, 1, "MainThread");
  p.add_sample(t, stack, 0.001, 0.001);
  p.add_sample(t, p.stacks.parent(stack), 0.002, 0.001);
  for (Format f : {Format::kCollapsed, Format::kSpeedscope, Format::kChromeTrace, Format::kPprof,
                   Format::kFlameGraphHtml, Format::kFlameGraphSvg}) {
    std::string out = write(p, f);
    EXPECT_FALSE(out.empty()) << format_name(f);
  }
  auto trace = nlohmann::json::parse(write(p, Format::kChromeTrace));
  size_t begins = 0, ends = 0;
  for (const auto& e : trace["traceEvents"]) {
    begins += e["ph"] == "B";
    ends += e["ph"] == "E";
  }
  EXPECT_EQ(begins, 20001u);
  EXPECT_EQ(ends, 20001u);
}

TEST(ExportEmpty, EmptyProfileIsValid) {
  Profile p;
  EXPECT_EQ(write(p, Format::kCollapsed), "");
  auto speedscope = nlohmann::json::parse(write(p, Format::kSpeedscope));
  EXPECT_TRUE(speedscope["profiles"].empty());
  auto trace = nlohmann::json::parse(write(p, Format::kChromeTrace));
  EXPECT_EQ(trace["traceEvents"].size(), 1u);
  EXPECT_FALSE(write(p, Format::kPprof).empty());
  EXPECT_NE(write(p, Format::kFlameGraphHtml).find("spyglass-data"), std::string::npos);
}

}  // namespace
}  // namespace spyglass::report
