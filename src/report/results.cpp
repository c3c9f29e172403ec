#include "report/results.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <optional>
#include <string_view>

namespace spyglass::report {

namespace {

// Display width of a UTF-8 string: one column per code point (names, units and box characters
// used here are all single-width), so continuation bytes are not counted.
size_t display_width(std::string_view text) {
  size_t width = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++width;
  }
  return width;
}

// A note as a bullet, its words wrapped to `width` columns (0: one line) and the lines after
// the first indented under its text: a terminal cuts nothing, a file keeps it whole.
std::string wrap_note(const std::string& note, std::string_view bullet, size_t width) {
  const size_t indent = display_width(bullet);
  if (width == 0 || width <= indent + 20 || indent + display_width(note) <= width) {
    return std::string(bullet) + note + "\n";
  }
  std::string out(bullet);
  size_t used = indent;
  size_t start = 0;
  while (start < note.size()) {
    size_t end = note.find(' ', start);
    if (end == std::string::npos) end = note.size();
    const std::string_view word(note.data() + start, end - start);
    const size_t w = display_width(word);
    if (used > indent && used + 1 + w > width) {
      out += "\n" + std::string(indent, ' ');
      used = indent;
    } else if (used > indent) {
      out += ' ';
      ++used;
    }
    out += word;
    used += w;
    start = end + 1;
  }
  return out + "\n";
}

enum class Align { kLeft, kRight };

struct Column {
  std::string title;
  Align align;
};

// A matched function's name, in parts, so that a narrow table can drop the least telling ones.
struct MatchLabel {
  std::string indent;    // "  ↳ "
  std::string function;  // qualified name
  std::string location;  // "sympy/polys/polytools.py:6300", or empty
};

// One table line: either cells, or a separator between groups of rows.
struct Row {
  std::vector<std::string> cells;
  bool separator = false;
  std::optional<MatchLabel> match;   // the first cell is a matched function's name
  std::vector<std::string> shorter;  // else: shorter forms of the first cell, best first
};

struct Box {
  const char* horizontal;
  const char* vertical;
  const char* top_left;
  const char* top_mid;
  const char* top_right;
  const char* mid_left;
  const char* mid_mid;
  const char* mid_right;
  const char* bottom_left;
  const char* bottom_mid;
  const char* bottom_right;
};

constexpr Box kUnicodeBox{"─", "│", "┌", "┬", "┐", "├", "┼", "┤", "└", "┴", "┘"};
constexpr Box kAsciiBox{"-", "|", "+", "+", "+", "+", "+", "+", "+", "+", "+"};

std::string repeat(const char* piece, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) out += piece;
  return out;
}

std::string pad(const std::string& text, size_t width, Align align) {
  size_t used = display_width(text);
  std::string fill(width > used ? width - used : 0, ' ');
  return align == Align::kLeft ? text + fill : fill + text;
}

std::vector<size_t> column_widths(const std::vector<Column>& columns,
                                  const std::vector<Row>& rows) {
  std::vector<size_t> widths(columns.size());
  for (size_t c = 0; c < columns.size(); ++c) widths[c] = display_width(columns[c].title);
  for (const Row& row : rows) {
    for (size_t c = 0; c < row.cells.size() && c < columns.size(); ++c) {
      widths[c] = std::max(widths[c], display_width(row.cells[c]));
    }
  }
  return widths;
}

// The whole line's width: each column, one space either side, and the rules between.
size_t table_width(const std::vector<size_t>& widths) {
  size_t total = 1;
  for (size_t w : widths) total += w + 3;
  return total;
}

// The first `count` code points of a UTF-8 string (or its last ones).
std::string utf8_head(std::string_view text, size_t count) {
  size_t end = 0, seen = 0;
  while (end < text.size()) {
    if ((static_cast<unsigned char>(text[end]) & 0xC0) != 0x80) {
      if (seen == count) break;
      ++seen;
    }
    ++end;
  }
  return std::string(text.substr(0, end));
}

std::string utf8_tail(std::string_view text, size_t count) {
  size_t total = display_width(text);
  if (count >= total) return std::string(text);
  size_t skip = total - count, start = 0, seen = 0;
  while (start < text.size()) {
    if ((static_cast<unsigned char>(text[start]) & 0xC0) != 0x80) {
      if (seen == skip) break;
      ++seen;
    }
    ++start;
  }
  return std::string(text.substr(start));
}

// Text cut in the middle to `width` columns, keeping more of the end (where a qualified name
// says which function).
std::string elide(const std::string& text, size_t width, bool unicode) {
  if (display_width(text) <= width) return text;
  const std::string mark = unicode ? "…" : "...";
  const size_t mark_width = display_width(mark);
  if (width <= mark_width) return utf8_tail(text, width);
  size_t room = width - mark_width;
  size_t head = room / 3;
  return utf8_head(text, head) + mark + utf8_tail(text, room - head);
}

// How much of a matched function's name a narrow table keeps, from all of it to the least.
enum class MatchForm {
  kWhole,           // qualname (path/from/package.py:line)
  kFileName,        // qualname (package.py:line)
  kFileNameNoLine,  // qualname (package.py)
  kCutName,         // qua…name (package.py): the qualified name cut in the middle
  kCutNameOnly,     // qua…name
};

std::string match_text(const MatchLabel& m, MatchForm form, size_t width, bool unicode) {
  const size_t slash = m.location.rfind('/');
  const std::string file = slash == std::string::npos ? m.location : m.location.substr(slash + 1);
  std::string location = form == MatchForm::kWhole         ? m.location
                         : form == MatchForm::kFileName    ? file
                         : form == MatchForm::kCutNameOnly ? std::string()
                                                           : file.substr(0, file.rfind(':'));
  std::string tail = location.empty() ? "" : " (" + location + ")";
  std::string function = m.function;
  if (form == MatchForm::kCutName || form == MatchForm::kCutNameOnly) {
    size_t fixed = display_width(m.indent) + display_width(tail);
    function = elide(m.function, width > fixed ? width - fixed : 1, unicode);
  }
  return m.indent + function + tail;
}

// Whether a matched function's row fits `width` in `form`; kCutName also needs enough of the
// qualified name left to tell functions apart.
bool match_fits(const MatchLabel& m, MatchForm form, size_t width, bool unicode) {
  constexpr size_t kTelling = 8;
  std::string text = match_text(m, form, width, unicode);
  if (display_width(text) > width) return false;
  if (form != MatchForm::kCutName) return true;
  size_t around = display_width(match_text(m, MatchForm::kFileNameNoLine, 0, unicode)) -
                  display_width(m.function);
  return display_width(text) - around >= std::min(kTelling, display_width(m.function));
}

// One form for the rows of matched functions, so that they read alike: the fullest that fits
// every row able to keep its file's name (a row that cannot shows its qualified name alone).
MatchForm match_form(const std::vector<Row>& rows, size_t width, bool unicode) {
  for (MatchForm form : {MatchForm::kWhole, MatchForm::kFileName, MatchForm::kFileNameNoLine}) {
    bool all = true;
    for (const Row& row : rows) {
      if (!row.match || !match_fits(*row.match, MatchForm::kCutName, width, unicode)) continue;
      all = all && match_fits(*row.match, form, width, unicode);
    }
    if (all) return form;
  }
  return MatchForm::kCutName;
}

// Narrows the Function column so the table fits `max_width` columns (no narrower than a
// readable minimum): long names are shortened, matched functions by their least telling parts.
void fit_first_column(const std::vector<Column>& columns, std::vector<Row>& rows, size_t max_width,
                      bool unicode) {
  constexpr size_t kNarrowest = 16;
  std::vector<size_t> widths = column_widths(columns, rows);
  size_t width = table_width(widths);
  if (max_width == 0 || width <= max_width) return;
  size_t others = width - widths[0];
  size_t room = max_width > others ? max_width - others : 0;
  room = std::max({room, kNarrowest, display_width(columns[0].title)});
  const MatchForm form = match_form(rows, room, unicode);
  for (Row& row : rows) {
    if (row.cells.empty() || (!row.match && display_width(row.cells[0]) <= room)) continue;
    if (row.match) {
      bool fits = match_fits(*row.match, form, room, unicode);
      row.cells[0] = match_text(*row.match, fits ? form : MatchForm::kCutNameOnly, room, unicode);
      continue;
    }
    for (const std::string& form : row.shorter) {
      row.cells[0] = form;
      if (display_width(form) <= room) break;
    }
    row.cells[0] = elide(row.cells[0], room, unicode);
  }
}

std::string draw_table(const std::vector<Column>& columns, const std::vector<Row>& rows,
                       const Box& box) {
  const std::vector<size_t> widths = column_widths(columns, rows);
  auto rule = [&](const char* left, const char* mid, const char* right) {
    std::string line = left;
    for (size_t c = 0; c < columns.size(); ++c) {
      line += repeat(box.horizontal, widths[c] + 2);
      line += c + 1 < columns.size() ? mid : right;
    }
    return line + "\n";
  };
  auto cells_line = [&](const std::vector<std::string>& cells, bool header) {
    std::string line = box.vertical;
    for (size_t c = 0; c < columns.size(); ++c) {
      const std::string empty;
      const std::string& text = c < cells.size() ? cells[c] : empty;
      // Titles follow their column's alignment so numbers and headings line up.
      line += " " + pad(text, widths[c], header && c == 0 ? Align::kLeft : columns[c].align) + " ";
      line += box.vertical;
    }
    return line + "\n";
  };

  std::vector<std::string> titles;
  for (const Column& column : columns) titles.push_back(column.title);
  std::string out = rule(box.top_left, box.top_mid, box.top_right);
  out += cells_line(titles, true);
  out += rule(box.mid_left, box.mid_mid, box.mid_right);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].separator) {
      // A separator only between groups, never doubled or at the end.
      if (i + 1 < rows.size() && !rows[i + 1].separator) {
        out += rule(box.mid_left, box.mid_mid, box.mid_right);
      }
      continue;
    }
    out += cells_line(rows[i].cells, false);
  }
  out += rule(box.bottom_left, box.bottom_mid, box.bottom_right);
  return out;
}

std::string format_percent(double fraction) {
  if (!std::isfinite(fraction)) return "-";
  double percent = fraction * 100;
  if (percent > 0 && percent < 0.1) return "<0.1%";
  return fmt::format("{:.1f}%", percent);
}

std::string format_count(uint64_t n) {
  // Thousands separated so long counts stay readable: 1,234,567.
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string format_rate(double hz) {
  if (hz >= 1000) return fmt::format("{:.3g} kHz", hz / 1000);
  if (hz >= 10) return fmt::format("{:.0f} Hz", hz);
  return fmt::format("{:.2g} Hz", hz);
}

// Inclusive time first, "no data" last, otherwise the order chosen (stable).
std::vector<const FunctionResult*> sorted_functions(const Results& results) {
  std::vector<const FunctionResult*> order;
  for (const FunctionResult& f : results.functions) order.push_back(&f);
  std::stable_sort(order.begin(), order.end(),
                   [](const FunctionResult* a, const FunctionResult* b) {
                     if (a->has_data != b->has_data) return a->has_data;
                     return a->figures.seconds > b->figures.seconds;
                   });
  return order;
}

// The line above the table; broken at its separators when wider than `max_width` (0: any).
std::string header_line(const Results& r, bool unicode, size_t max_width) {
  const char* dot = unicode ? " · " : " | ";
  std::string line = fmt::format("mode {}", r.mode.empty() ? "wall" : r.mode);
  if (r.pid != 0) line += fmt::format("{}pid {}", dot, r.pid);
  if (!r.python_version.empty()) line += fmt::format("{}Python {}", dot, r.python_version);
  line += fmt::format("{}duration {}", dot, format_seconds(r.duration_seconds, unicode));
  if (r.mode != "exact") {
    line += fmt::format("{}rate {} requested, {} achieved", dot, format_rate(r.rate_hz),
                        format_rate(r.achieved_rate_hz));
    line += fmt::format("{}{} samples ({} late, {} missed)", dot, format_count(r.samples),
                        format_count(r.late_samples), format_count(r.missed_samples));
  }
  if (r.target_exited) line += fmt::format("{}target exited", dot);
  if (max_width == 0 || display_width(line) <= max_width) return line + "\n";
  // Narrow: as many parts on each line as fit, the first part of a line without a separator.
  std::string out, current;
  size_t start = 0;
  const std::string_view separator = dot;
  while (start <= line.size()) {
    size_t end = line.find(separator, start);
    std::string part =
        line.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!current.empty() &&
        display_width(current) + display_width(separator) + display_width(part) > max_width) {
      out += current + "\n";
      current.clear();
    }
    current += (current.empty() ? "" : std::string(separator)) + part;
    if (end == std::string::npos) break;
    start = end + separator.size();
  }
  return out + current + "\n";
}

std::string error_cell(double error_seconds, bool unicode) {
  return (unicode ? "± " : "+/- ") + format_seconds(error_seconds, unicode);
}

std::vector<std::string> sampling_cells(const std::string& label, const Figures& f, double share,
                                        bool show_share, bool unicode) {
  return {label,
          format_seconds(f.seconds, unicode),
          error_cell(f.error_seconds, unicode),
          format_seconds(f.self_seconds, unicode),
          show_share ? format_percent(share) : "",
          format_count(f.samples)};
}

std::vector<std::string> exact_cells(const std::string& label, const Figures& f, bool unicode) {
  std::vector<std::string> cells{label, f.calls ? format_count(*f.calls) : "-",
                                 format_seconds(f.seconds, unicode),
                                 format_seconds(f.self_seconds, unicode)};
  if (f.latency) {
    for (double v :
         {f.latency->mean, f.latency->p50, f.latency->p90, f.latency->p99, f.latency->max}) {
      cells.push_back(format_seconds(v, unicode));
    }
  } else {
    cells.insert(cells.end(), 5, "-");
  }
  return cells;
}

std::string thread_label(const ThreadFigures& t, bool last, bool unicode) {
  std::string name = t.name.empty() ? fmt::format("thread {}", t.native_id)
                                    : fmt::format("{} ({})", t.name, t.native_id);
  const char* branch = unicode ? (last ? "  └ " : "  ├ ") : "  - ";
  return branch + name;
}

nlohmann::json figures_json(const Figures& f) {
  nlohmann::json j{{"seconds", f.seconds},
                   {"self_seconds", f.self_seconds},
                   {"samples", f.samples},
                   {"error_seconds", f.error_seconds}};
  if (f.calls) j["calls"] = *f.calls;
  if (f.latency) {
    j["latency"] = {{"mean", f.latency->mean}, {"min", f.latency->min}, {"max", f.latency->max},
                    {"p50", f.latency->p50},   {"p90", f.latency->p90}, {"p99", f.latency->p99}};
    if (!f.latency->histogram.empty()) j["latency"]["histogram"] = f.latency->histogram;
  }
  if (f.coroutine_wall_seconds) j["coroutine_wall_seconds"] = *f.coroutine_wall_seconds;
  return j;
}

}  // namespace

std::string format_seconds(double seconds, bool unicode) {
  if (!std::isfinite(seconds)) return "-";
  if (seconds == 0) return "0 s";
  double magnitude = std::fabs(seconds);
  const char* sign = seconds < 0 ? "-" : "";
  if (magnitude < 1e-6) return fmt::format("{}{:.0f} ns", sign, magnitude * 1e9);
  if (magnitude < 1e-3) {
    return fmt::format("{}{:.3g} {}", sign, magnitude * 1e6, unicode ? "µs" : "us");
  }
  if (magnitude < 1) return fmt::format("{}{:.3g} ms", sign, magnitude * 1e3);
  if (magnitude < 60) return fmt::format("{}{:.3g} s", sign, magnitude);
  auto whole = static_cast<uint64_t>(std::llround(magnitude));
  if (whole < 3600) return fmt::format("{}{} min {:02} s", sign, whole / 60, whole % 60);
  return fmt::format("{}{} h {:02} min", sign, whole / 3600, whole / 60 % 60);
}

bool terminal_is_utf8() {
  // The first of these that is set decides, as the C library does.
  for (const char* name : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') continue;
    std::string lower(value);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return lower.find("utf-8") != std::string::npos || lower.find("utf8") != std::string::npos;
  }
  return false;
}

double sampling_error_seconds(uint64_t hits, uint64_t total_samples, double duration_seconds) {
  if (total_samples == 0 || !(duration_seconds > 0)) return 0;
  hits = std::min(hits, total_samples);
  const double z = 1.959963984540054;  // two-sided 95%
  const auto n = static_cast<double>(total_samples);
  const double p = static_cast<double>(hits) / n;
  // Wilson score interval on the fraction of samples that saw the function.
  const double z2n = z * z / n;
  const double center = (p + z2n / 2) / (1 + z2n);
  const double half = z / (1 + z2n) * std::sqrt(p * (1 - p) / n + z2n / (4 * n));
  const double lower = std::max(0.0, center - half);
  const double upper = std::min(1.0, center + half);
  const double statistical = std::max(upper - p, p - lower) * duration_seconds;
  // Each sample stands for one period: the edges of the function's runs are known only to it.
  const double quantisation = duration_seconds / n;
  return statistical + quantisation;
}

std::string render_table(const Results& results, const TableStyle& style) {
  const bool unicode = style.unicode;
  const bool exact = results.mode == "exact";
  std::vector<Column> columns;
  if (exact) {
    columns = {{"Function", Align::kLeft}, {"Calls", Align::kRight}, {"Total", Align::kRight},
               {"Self", Align::kRight},    {"Mean", Align::kRight},  {"p50", Align::kRight},
               {"p90", Align::kRight},     {"p99", Align::kRight},   {"Max", Align::kRight}};
  } else {
    columns = {{"Function", Align::kLeft},
               {"Total (inclusive)", Align::kRight},
               {unicode ? "± error" : "+/- error", Align::kRight},
               {"Self", Align::kRight},
               {"Share", Align::kRight},
               {"Samples", Align::kRight}};
  }
  const std::string arrow = unicode ? "  ↳ " : "  > ";

  std::vector<Row> rows;
  const auto order = sorted_functions(results);
  for (const FunctionResult* f : order) {
    const bool several = f->matches.size() > 1;
    bool detailed = several || (style.per_thread && !f->threads.empty());
    if (detailed && !rows.empty()) rows.push_back(Row{{}, true});
    std::string name = f->name;
    if (several) name += fmt::format(" ({} functions)", format_count(f->matches.size()));
    if (!f->has_data) {
      std::vector<std::string> cells(columns.size(), "");
      cells[0] = name;
      cells[1] = "no data";
      rows.push_back(Row{cells});
    } else if (exact) {
      rows.push_back(Row{exact_cells(name, f->figures, unicode)});
    } else {
      rows.push_back(Row{sampling_cells(name, f->figures, f->share, true, unicode)});
    }
    rows.back().shorter = {f->name};  // narrow: the pattern before the count of its functions
    if (several) {
      // Heaviest first (as given); the first max_matches as rows, the rest folded in one.
      const size_t shown = std::min(f->matches.size(), std::max<size_t>(style.max_matches, 1));
      for (size_t i = 0; i < shown; ++i) {
        const MatchResult& m = f->matches[i];
        std::string location;
        size_t open = m.label.rfind(" (");
        if (open != std::string::npos && m.label.back() == ')') {
          location = m.label.substr(open + 2, m.label.size() - open - 3);
        }
        MatchLabel label{arrow, open != std::string::npos ? m.label.substr(0, open) : m.label,
                         location};
        std::string text = arrow + m.label;
        std::vector<std::string> cells(columns.size(), "");
        if (m.has_figures) {
          cells = exact ? exact_cells(text, m.figures, unicode)
                        : sampling_cells(text, m.figures, m.share, true, unicode);
        } else {
          cells[0] = text;
        }
        rows.push_back(Row{cells, false, label});
      }
      if (f->matches.size() > shown) {
        std::vector<std::string> cells(columns.size(), "");
        cells[0] = fmt::format("{}{} more", unicode ? "  … " : "  ... ",
                               format_count(f->matches.size() - shown));
        // Self time adds up across functions (inclusive time would count nested calls twice).
        double self = 0;
        bool figures = false;
        for (size_t i = shown; i < f->matches.size(); ++i) {
          self += f->matches[i].figures.self_seconds;
          figures = figures || f->matches[i].has_figures;
        }
        if (figures) cells[3] = format_seconds(self, unicode);  // Self, in both layouts
        rows.push_back(Row{cells});
      }
    }
    if (style.per_thread && f->has_data) {
      for (size_t i = 0; i < f->threads.size(); ++i) {
        const ThreadFigures& t = f->threads[i];
        std::string label = thread_label(t, i + 1 == f->threads.size(), unicode);
        rows.push_back(Row{exact ? exact_cells(label, t.figures, unicode)
                                 : sampling_cells(label, t.figures, 0, false, unicode)});
      }
    }
    if (detailed) rows.push_back(Row{{}, true});
  }
  if (rows.empty()) {
    std::vector<std::string> cells(columns.size(), "");
    cells[0] = "(no functions chosen)";
    rows.push_back(Row{cells});
  }

  if (style.max_width > 0) {
    // A narrow terminal: the shorter title first, then shorter names.
    if (!exact && table_width(column_widths(columns, rows)) > style.max_width) {
      columns[1].title = "Total";
    }
    fit_first_column(columns, rows, style.max_width, unicode);
  }
  std::string out = header_line(results, unicode, style.max_width);
  out += draw_table(columns, rows, unicode ? kUnicodeBox : kAsciiBox);
  for (const std::string& note : results.notes) {
    out += wrap_note(note, unicode ? "• " : "* ", style.max_width);
  }
  return out;
}

nlohmann::json to_json(const Results& results) {
  nlohmann::json functions = nlohmann::json::array();
  for (const FunctionResult& f : results.functions) {
    nlohmann::json item = figures_json(f.figures);
    item["name"] = f.name;
    item["share"] = f.share;
    item["has_data"] = f.has_data;
    nlohmann::json matches = nlohmann::json::array();
    for (const MatchResult& m : f.matches) {
      nlohmann::json match = m.has_figures ? figures_json(m.figures) : nlohmann::json::object();
      match["label"] = m.label;
      match["function"] = m.function;
      match["file"] = m.file;
      match["line"] = m.line;
      if (!m.module.empty()) match["module"] = m.module;
      if (m.has_figures) match["share"] = m.share;
      matches.push_back(std::move(match));
    }
    item["matches"] = std::move(matches);
    nlohmann::json threads = nlohmann::json::array();
    for (const ThreadFigures& t : f.threads) {
      nlohmann::json thread = figures_json(t.figures);
      thread["thread_id"] = t.thread_id;
      thread["native_id"] = t.native_id;
      thread["name"] = t.name;
      threads.push_back(std::move(thread));
    }
    item["threads"] = std::move(threads);
    functions.push_back(std::move(item));
  }
  return nlohmann::json{
      {"functions", std::move(functions)},
      {"mode", results.mode},
      {"pid", results.pid},
      {"python_version", results.python_version},
      {"duration_seconds", results.duration_seconds},
      {"rate_hz", results.rate_hz},
      {"achieved_rate_hz", results.achieved_rate_hz},
      {"samples", results.samples},
      {"late_samples", results.late_samples},
      {"missed_samples", results.missed_samples},
      {"thread_samples", results.thread_samples},
      {"reread_stacks", results.reread_stacks},
      {"returned_frames", results.returned_frames},
      {"frames_read_again", results.frames_read_again},
      {"returning_frames", results.returning_frames},
      {"incomplete_stacks", results.incomplete_stacks},
      {"unreadable_samples", results.unreadable_samples},
      {"slow_samples", results.slow_samples},
      {"slow_seconds", results.slow_seconds},
      {"reread_thread_lists", results.reread_thread_lists},
      {"cut_thread_lists", results.cut_thread_lists},
      {"unpaused_threads", results.unpaused_threads},
      {"async_aware", results.async_aware},
      {"tasks",
       {{"samples", results.task_samples},
        {"unreadable", results.unreadable_tasks},
        {"cut_chains", results.cut_task_chains},
        {"cut_lists", results.cut_task_lists},
        {"linked_samples", results.linked_task_samples},
        {"unreadable_links", results.unreadable_task_links},
        {"source", results.tasks_source}}},
      {"code_objects",
       {{"read", results.code_reads},
        {"proven", results.code_proofs},
        {"counter_faults", results.counter_faults},
        {"counter_off", results.counter_off}}},
      {"thread_stacks", {{"read", results.stacks_read}, {"unchanged", results.unchanged_stacks}}},
      {"mean_walk_us", results.mean_walk_us},
      {"mean_read_us", results.mean_read_us},
      {"read_calls", results.read_calls},
      {"sampler_cpu_seconds", results.sampler_cpu_seconds},
      {"scheduling", results.scheduling},
      {"realtime_given_up", results.realtime_given_up},
      {"target_exited", results.target_exited},
      {"notes", results.notes}};
}

}  // namespace spyglass::report
