#!/usr/bin/env python3
"""Writes src/cpython/layout_generated.cpp from src/cpython/versions.toml.

    tools/gen_layouts.py            write the file (after editing versions.toml)
    tools/gen_layouts.py --check    exit 1, saying so, when the file is not what the spec gives

The generated file is kept in the tree (so a build needs no Python); the unit tests run
--check, so a spec edit without regenerating fails them. It holds: the supported range; for
3.8-3.12, each version's layout as numbers; for 3.13+, each version's reader of the target's
_Py_DebugOffsets (word indexes, widths and bounds, checked by DebugTable in debug_offsets.cpp);
and the list of every field for tools/layout_dump.
"""

import argparse
import difflib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cpython_spec  # noqa: E402

OUTPUT = cpython_spec.REPO_ROOT / "src" / "cpython" / "layout_generated.cpp"
WIDTH = 100  # the project's line length (.clang-format)


def cxx_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def comment(field) -> str:
    return field.c if field.c else field.why


def statement(code: str, note: str, indent: str = "  ") -> list:
    """`code;  // note`, the note on the line before when the line would be too long."""
    line = "%s%s;  // %s" % (indent, code, note)
    if len(line) <= WIDTH:
        return [line]
    return ["%s// %s" % (indent, note), "%s%s;" % (indent, code)]


def version_header(version) -> list:
    return ["  l.frame_model = %s;" % cpython_spec.FRAME_MODELS[version.frame_model],
            "  l.line_table = %s;" % cpython_spec.LINE_TABLES[version.line_table]]


def builtin_function(version) -> list:
    lines = ["// CPython %s: transcribed from its headers (%s)." % (
        version.text, ", ".join(version.headers)),
        "Layout layout_3%d() {" % version.minor, "  Layout l;"]
    lines += version_header(version)
    for field in version.fields.values():
        lines += statement("l.%s = %s" % (field.member, cxx_value(field.value)), comment(field))
    lines += ["  return l;", "}", ""]
    return lines


def debug_reader(version, spec) -> list:
    words = version.debug_words()
    fields = list(version.fields.values())
    lines = ["// CPython %s: its _Py_DebugOffsets is %d words (%d bytes); what the table does not"
             % (version.text, version.debug_table_words(), 8 * version.debug_table_words()),
             "// carry is transcribed from the headers.",
             "void read_3%d(const DebugTable& t, Layout& l) {" % version.minor]
    lines += version_header(version)
    # Every struct size an offset is checked against, first (and validated once).
    sections = []
    for field in fields:
        if field.debug and not field.debug.endswith(".size"):
            section = field.within or field.debug.split(".")[0]
            if section not in sections:
                sections.append(section)
    by_debug = {field.debug: field for field in fields
                if field.debug and field.debug.endswith(".size")}
    for section in sections:
        name = section + ".size"
        field = by_debug.pop(name, None)
        call = 't.size("%s", %d%s)' % (name, words[name],
                                         ", %d" % field.max if field and field.max else "")
        if field:
            lines += statement("l.%s = %s" % (field.member, call), comment(field))
        else:
            lines.append("  %s;" % call)
    for field in fields:
        if field.debug and field.debug.endswith(".size") and field.debug not in by_debug:
            continue  # assigned with the sizes above
        if field.debug is None:
            code = "l.%s = %s" % (field.member, cxx_value(field.value))
        elif field.debug.endswith(".size"):
            code = 'l.%s = t.size("%s", %d%s)' % (
                field.member, field.debug, words[field.debug],
                ", %d" % field.max if field.max else "")
        elif field.width is None:
            section = field.within or field.debug.split(".")[0]
            code = 'l.%s = t.size_within("%s", %d, %d)' % (
                field.member, field.debug, words[field.debug], words[section + ".size"])
        elif field.relative_to:
            section = field.within or field.debug.split(".")[0]
            code = 'l.%s = t.relative("%s", %d, %d, %d, %d)' % (
                field.member, field.debug, words[field.debug], words[field.relative_to],
                words[section + ".size"], field.width)
        else:
            section = field.within or field.debug.split(".")[0]
            code = 'l.%s = t.offset("%s", %d, %d, %d)' % (
                field.member, field.debug, words[field.debug], words[section + ".size"],
                field.width)
        lines += statement(code, comment(field))
    lines += ["}", ""]
    return lines


def generate(spec) -> str:
    builtin = [v for v in spec.versions.values() if not v.reads_debug_offsets]
    debug = [v for v in spec.versions.values() if v.reads_debug_offsets]
    out = ["// Generated by tools/gen_layouts.py from src/cpython/versions.toml: do not edit; edit the",
           "// spec and run tools/gen_layouts.py (the unit tests fail while this file is out of date).",
           "// clang-format off",
           "#include <cstddef>",
           "#include <optional>",
           "#include <vector>",
           "",
           '#include "cpython/debug_table.h"',
           '#include "cpython/layout.h"',
           "",
           "namespace spyglass::cpython {",
           "",
           "const SupportedVersions kSupportedVersions = {%d, %d, %d};" % (
               spec.oldest, spec.newest, spec.first_debug_offsets),
           "const uint64_t kDebugSizeMax = %d;" % spec.debug_size_max,
           "",
           "namespace {",
           ""]
    for version in builtin:
        out += builtin_function(version)
    for version in debug:
        out += debug_reader(version, spec)
    out += ["}  // namespace", "",
            "std::optional<Layout> builtin_layout(const PythonVersion& version) {",
            "  if (version.major != 3) return std::nullopt;",
            "  Layout layout;",
            "  switch (version.minor) {"]
    for version in builtin:
        out += ["    case %d:" % version.minor,
                "      layout = layout_3%d();" % version.minor,
                "      break;"]
    out += ["    default:", "      return std::nullopt;", "  }",
            "  layout.version = version;", "  return layout;", "}", "",
            "const DebugOffsetsReader* debug_offsets_reader(int minor) {",
            "  static const DebugOffsetsReader kReaders[] = {"]
    for version in debug:
        out.append("      {%d, %d, read_3%d}," % (version.minor, version.debug_table_words(),
                                                  version.minor))
    out += ["  };",
            "  for (const auto& reader : kReaders) {",
            "    if (reader.minor == minor) return &reader;",
            "  }",
            "  return nullptr;", "}", "",
            "std::vector<LayoutField> layout_fields(const Layout& l) {",
            "  return {"]
    for key in spec.keys():
        out.append('      {"%s", static_cast<int64_t>(l.%s)},' % (key, key))
    out += ["  };", "}", "", "}  // namespace spyglass::cpython", ""]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; fail when the file differs from what the spec gives")
    parser.add_argument("--spec", type=Path, default=cpython_spec.SPEC_PATH)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    try:
        text = generate(cpython_spec.load(args.spec))
    except cpython_spec.SpecError as error:
        print("gen_layouts: %s: %s" % (args.spec, error), file=sys.stderr)
        return 2
    current = args.output.read_text() if args.output.exists() else ""
    if args.check:
        if current == text:
            print("gen_layouts: %s is up to date with %s" % (args.output.name, args.spec.name))
            return 0
        diff = difflib.unified_diff(current.splitlines(), text.splitlines(),
                                    str(args.output), "regenerated", lineterm="", n=1)
        print("\n".join(list(diff)[:60]))
        print("gen_layouts: %s is out of date with %s: run tools/gen_layouts.py" % (
            args.output, args.spec))
        return 1
    if current != text:
        args.output.write_text(text)
        print("gen_layouts: wrote %s" % args.output)
    else:
        print("gen_layouts: %s unchanged" % args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
