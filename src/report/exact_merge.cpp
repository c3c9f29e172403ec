#include "report/exact_merge.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

namespace spyglass::report {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument(what);
}

double number(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) return 0;
  if (!it->is_number()) bad(fmt::format("'{}' is not a number", key));
  double value = it->get<double>();
  if (!std::isfinite(value) || value < 0) bad(fmt::format("'{}' is {}", key, value));
  return value;
}

// A count: a non-negative integer (a float such as 5e84 does not fit one).
uint64_t count(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) return 0;
  if (!it->is_number_unsigned()) bad(fmt::format("'{}' is not a count", key));
  return it->get<uint64_t>();
}

std::string text(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) return {};
  if (!it->is_string()) bad(fmt::format("'{}' is not a string", key));
  return it->get<std::string>();
}

const json& object_at(const json& object, const char* key) {
  static const json empty = json::object();
  auto it = object.find(key);
  if (it == object.end()) return empty;
  if (!it->is_object()) bad(fmt::format("'{}' is not an object", key));
  return *it;
}

const json& array_at(const json& object, const char* key) {
  static const json empty = json::array();
  auto it = object.find(key);
  if (it == object.end()) return empty;
  if (!it->is_array()) bad(fmt::format("'{}' is not a list", key));
  return *it;
}

Figures figures_from(const json& j) {
  if (!j.is_object()) bad("figures are not an object");
  Figures f;
  f.seconds = number(j, "seconds");
  f.self_seconds = number(j, "self_seconds");
  if (j.contains("calls")) f.calls = count(j, "calls");
  if (j.contains("coroutine_wall_seconds")) {
    f.coroutine_wall_seconds = number(j, "coroutine_wall_seconds");
  }
  if (j.contains("latency")) {
    const json& l = object_at(j, "latency");
    Latency latency;
    latency.mean = number(l, "mean");
    latency.min = number(l, "min");
    latency.max = number(l, "max");
    latency.p50 = number(l, "p50");
    latency.p90 = number(l, "p90");
    latency.p99 = number(l, "p99");
    for (const json& bucket : array_at(l, "histogram")) {
      if (!bucket.is_array() || bucket.size() != 2 || !bucket[0].is_number() ||
          !bucket[1].is_number_unsigned()) {
        bad("a latency histogram bucket is not [seconds, calls]");
      }
      const double seconds = bucket[0].get<double>();
      if (!std::isfinite(seconds) || seconds < 0) bad("a latency histogram bucket is negative");
      latency.histogram.emplace_back(seconds, bucket[1].get<uint64_t>());
    }
    f.latency = std::move(latency);
  }
  return f;
}

// Adds `part` into `total`: calls and times summed, latency over both sets of calls.
void add_figures(Figures& total, const Figures& part) {
  const uint64_t calls_before = total.calls.value_or(0);
  total.seconds += part.seconds;
  total.self_seconds += part.self_seconds;
  if (part.calls) total.calls = calls_before + *part.calls;
  if (part.coroutine_wall_seconds) {
    total.coroutine_wall_seconds =
        total.coroutine_wall_seconds.value_or(0) + *part.coroutine_wall_seconds;
  }
  const uint64_t part_calls = part.calls.value_or(0);
  if (!part.latency || part_calls == 0) return;
  if (!total.latency || calls_before == 0) {
    total.latency = part.latency;
    return;
  }
  Latency& l = *total.latency;
  const Latency& p = *part.latency;
  const auto before = static_cast<double>(calls_before);
  const auto added = static_cast<double>(part_calls);
  l.mean = (l.mean * before + p.mean * added) / (before + added);
  l.min = std::min(l.min, p.min);
  l.max = std::max(l.max, p.max);
  l.histogram.insert(l.histogram.end(), p.histogram.begin(), p.histogram.end());
  std::sort(l.histogram.begin(), l.histogram.end());
  // Buckets of the same value (the same clock in both processes) become one.
  std::vector<std::pair<double, uint64_t>> folded;
  for (const auto& bucket : l.histogram) {
    if (!folded.empty() && folded.back().first == bucket.first) {
      folded.back().second += bucket.second;
    } else {
      folded.push_back(bucket);
    }
  }
  l.histogram = std::move(folded);
  auto percentile = [&](double q) {
    return std::clamp(histogram_quantile(l.histogram, q), l.min, l.max);
  };
  l.p50 = percentile(0.50);
  l.p90 = percentile(0.90);
  l.p99 = percentile(0.99);
}

}  // namespace

double histogram_quantile(std::vector<std::pair<double, uint64_t>> histogram, double quantile) {
  std::sort(histogram.begin(), histogram.end());
  uint64_t total = 0;
  for (const auto& bucket : histogram) total += bucket.second;
  if (total == 0) return 0;
  // Rank of the wanted value, 1-based; ceil so that p50 of {a, b} is a.
  const double wanted = std::max(1.0, std::ceil(quantile * static_cast<double>(total)));
  uint64_t seen = 0;
  for (const auto& [seconds, calls] : histogram) {
    seen += calls;
    if (static_cast<double>(seen) >= wanted) return seconds;
  }
  return histogram.back().first;
}

Results exact_results_from_json(const json& document) {
  if (!document.is_object()) bad("the results are not a JSON object");
  Results results;
  results.mode = text(document, "mode");
  if (results.mode != "exact") bad(fmt::format("mode is '{}', not 'exact'", results.mode));
  const json& pid = document.value("pid", json(0));
  if (!pid.is_number_integer()) bad("'pid' is not a number");
  results.pid = pid.get<int>();
  results.python_version = text(document, "python_version");
  results.duration_seconds = number(document, "duration_seconds");
  for (const json& note : array_at(document, "notes")) {
    if (!note.is_string()) bad("a note is not a string");
    results.notes.push_back(note.get<std::string>());
  }
  for (const json& item : array_at(document, "functions")) {
    FunctionResult f;
    f.figures = figures_from(item);
    f.name = text(item, "name");
    f.share = number(item, "share");
    const json& has_data = item.value("has_data", json(false));
    if (!has_data.is_boolean()) bad("'has_data' is not true or false");
    f.has_data = has_data.get<bool>();
    for (const json& m : array_at(item, "matches")) {
      MatchResult match;
      if (!m.is_object()) bad("a match is not an object");
      match.label = text(m, "label");
      match.function = text(m, "function");
      match.file = text(m, "file");
      const json& line = m.value("line", json(0));
      if (!line.is_number_integer()) bad("a match's 'line' is not a number");
      match.line = line.get<int>();
      match.module = text(m, "module");
      match.has_figures = m.contains("seconds");
      if (match.has_figures) match.figures = figures_from(m);
      match.share = number(m, "share");
      f.matches.push_back(std::move(match));
    }
    for (const json& t : array_at(item, "threads")) {
      ThreadFigures thread;
      thread.figures = figures_from(t);
      thread.thread_id = count(t, "thread_id");
      const json& native = t.value("native_id", json(0));
      if (!native.is_number_integer()) bad("a thread's 'native_id' is not a number");
      thread.native_id = native.get<int>();
      thread.name = text(t, "name");
      f.threads.push_back(std::move(thread));
    }
    results.functions.push_back(std::move(f));
  }
  return results;
}

Results merge_exact_results(const std::vector<Results>& parts) {
  Results merged;
  merged.mode = "exact";
  std::map<std::string, size_t> by_name;
  for (const Results& part : parts) {
    merged.duration_seconds = std::max(merged.duration_seconds, part.duration_seconds);
    if (merged.python_version.empty()) {
      merged.python_version = part.python_version;
    } else if (merged.python_version != part.python_version &&
               merged.python_version.find(part.python_version) == std::string::npos) {
      merged.python_version += ", " + part.python_version;
    }
    for (const std::string& note : part.notes) {
      if (std::find(merged.notes.begin(), merged.notes.end(), note) == merged.notes.end()) {
        merged.notes.push_back(note);
      }
    }
    for (const FunctionResult& f : part.functions) {
      auto [it, added] = by_name.emplace(f.name, merged.functions.size());
      if (added) {
        FunctionResult empty;
        empty.name = f.name;
        merged.functions.push_back(std::move(empty));
      }
      FunctionResult& total = merged.functions[it->second];
      total.has_data = total.has_data || f.has_data;
      add_figures(total.figures, f.figures);
      for (const MatchResult& m : f.matches) {
        auto same = std::find_if(total.matches.begin(), total.matches.end(),
                                 [&](const MatchResult& t) { return t.label == m.label; });
        if (same == total.matches.end()) {
          total.matches.push_back(m);
        } else if (m.has_figures) {
          same->has_figures = true;
          add_figures(same->figures, m.figures);
        }
      }
      total.threads.insert(total.threads.end(), f.threads.begin(), f.threads.end());
    }
  }
  for (FunctionResult& f : merged.functions) {
    std::stable_sort(f.matches.begin(), f.matches.end(),
                     [](const MatchResult& a, const MatchResult& b) {
                       return a.figures.seconds > b.figures.seconds;
                     });
  }
  return merged;
}

}  // namespace spyglass::report
