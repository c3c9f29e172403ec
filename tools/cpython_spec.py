"""Reads src/cpython/versions.toml, the one spec of the CPython versions spyglass supports.

Resolves each version's `base`, checks that the spec is well formed (every minor of the range
present, every field of a known kind, every debug-offsets name in that version's table shape)
and gives it as plain objects to tools/gen_layouts.py (which writes the C++),
tools/check_layouts.py (which checks it against the headers) and tests/lib (the supported
range, the interpreters to fetch). See the top of versions.toml for the format.
"""

import dataclasses
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO_ROOT = Path(__file__).resolve().parents[1]
SPEC_PATH = REPO_ROOT / "src" / "cpython" / "versions.toml"

# The groups of Layout (src/cpython/layout.h); `object` is Layout's top level.
GROUPS = ("runtime", "interp", "thread", "frame", "code", "unicode", "bytes", "chunk", "async",
          "objects", "object", "debugger", "pending")
FRAME_MODELS = {"frame_object": "FrameModel::kFrameObject",
                "interpreter_frame": "FrameModel::kInterpreterFrame"}
LINE_TABLES = {"lnotab": "LineTableFormat::kLnotab",
               "linetable310": "LineTableFormat::kLinetable310",
               "locations": "LineTableFormat::kLocations"}
# _Py_DebugOffsets starts with char cookie[8], uint64_t version, uint64_t free_threaded.
DEBUG_HEADER_WORDS = 3
ABSENT = "absent"


class SpecError(Exception):
    """The spec is not well formed; the message names the version and the field."""


@dataclasses.dataclass(frozen=True)
class Field:
    group: str
    name: str
    value: object = None          # int or bool: a transcribed number or constant
    debug: Optional[str] = None   # "section.field" of _Py_DebugOffsets, read from the target
    relative_to: Optional[str] = None
    c: Optional[str] = None       # the C expression the headers give
    why: Optional[str] = None     # instead of `c`: why no header states it
    width: Optional[int] = None   # bytes of the field at that offset
    max: Optional[int] = None     # for a size read from the target: its upper bound
    within: Optional[str] = None  # the debug section whose size bounds it (default: its own)

    @property
    def key(self) -> str:
        """The name tools and the dumper use: "thread.frame", or "ob_type" for `object`."""
        return self.name if self.group == "object" else "%s.%s" % (self.group, self.name)

    @property
    def member(self) -> str:
        """The C++ member of Layout: "thread.frame", or "ob_type"."""
        return self.key

    @property
    def width_expression(self) -> Optional[str]:
        """sizeof of the member an `offsetof(T, member)` expression names."""
        if not self.c or not self.c.startswith("offsetof(") or not self.c.endswith(")"):
            return None
        inside = self.c[len("offsetof("):-1]
        struct, _, member = inside.rpartition(",")
        return "sizeof(((%s *)0)->%s)" % (struct.strip(), member.strip())


@dataclasses.dataclass
class Version:
    minor: int
    frame_model: str
    line_table: str
    headers: List[str]
    fields: Dict[str, Field]                     # by key, in spec order
    debug_offsets: Optional[Dict[str, List[str]]]  # section -> words, in order; None before 3.13

    @property
    def text(self) -> str:
        return "3.%d" % self.minor

    @property
    def reads_debug_offsets(self) -> bool:
        return self.debug_offsets is not None

    def debug_words(self) -> Dict[str, int]:
        """"section.field" -> index of its 64-bit word in _Py_DebugOffsets."""
        words = {}
        index = DEBUG_HEADER_WORDS
        for section, names in (self.debug_offsets or {}).items():
            for name in names:
                words["%s.%s" % (section, name)] = index
                index += 1
        return words

    def debug_table_words(self) -> int:
        return DEBUG_HEADER_WORDS + sum(len(names) for names in (self.debug_offsets or {}).values())


@dataclasses.dataclass
class Spec:
    oldest: int
    newest: int
    debian_unstable: Tuple[int, ...]
    first_debug_offsets: int
    debug_size_max: int
    versions: Dict[int, Version]

    @property
    def minors(self) -> Tuple[int, ...]:
        return tuple(range(self.oldest, self.newest + 1))

    def keys(self) -> List[str]:
        """Every Layout field any version names, in a stable order (first seen)."""
        seen: Dict[str, None] = {}
        for version in self.versions.values():
            for key in version.fields:
                seen.setdefault(key, None)
        return list(seen)


def load_toml(path: Path) -> dict:
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        try:
            import tomli as tomllib  # the same parser, from PyPI, for older Pythons
        except ImportError:
            sys.exit("reading %s needs Python 3.11+ (tomllib) or the tomli package" % path)
    with open(path, "rb") as spec:
        return tomllib.load(spec)


def _field(version: str, group: str, name: str, raw) -> Optional[Field]:
    where = "%s %s.%s" % (version, group, name)
    if raw == ABSENT:
        return None
    if not isinstance(raw, dict):
        raise SpecError("%s: expected a table or \"absent\", got %r" % (where, raw))
    unknown = set(raw) - {"value", "debug", "relative_to", "c", "why", "width", "max",
                       "within"}
    if unknown:
        raise SpecError("%s: unknown keys %s" % (where, ", ".join(sorted(unknown))))
    field = Field(group, name, **raw)
    if (field.value is None) == (field.debug is None):
        raise SpecError("%s: give exactly one of `value` and `debug`" % where)
    if not field.c and not field.why:
        raise SpecError("%s: give `c` (what the headers say) or `why` (why none does)" % where)
    if field.width_expression and field.width is None:
        raise SpecError("%s: an offset needs its `width`" % where)
    if field.width is not None and not field.width_expression:
        raise SpecError("%s: `width` only goes with an offsetof expression" % where)
    if field.relative_to and not field.debug:
        raise SpecError("%s: `relative_to` only goes with `debug`" % where)
    if field.within and not field.debug:
        raise SpecError("%s: `within` only goes with `debug`" % where)
    if field.max is not None and not (field.debug or "").endswith(".size"):
        raise SpecError("%s: `max` only goes with a struct size read from the target" % where)
    return field


def _resolve(raw_versions: dict, text: str, seen=()) -> dict:
    """The version's table with its `base` chain merged in (the version's own entries win)."""
    if text in seen:
        raise SpecError("versions %s: `base` goes round in a circle" % " -> ".join(seen + (text,)))
    if text not in raw_versions:
        raise SpecError("version %s is named as a base but not defined" % text)
    own = raw_versions[text]
    if "base" not in own:
        return own
    merged = dict(_resolve(raw_versions, own["base"], seen + (text,)))
    for key, value in own.items():
        if key == "base":
            continue
        if key in GROUPS and key in merged:
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def load(path: Path = SPEC_PATH) -> Spec:
    data = load_toml(path)
    support = data.get("support", {})
    try:
        oldest, newest = int(support["oldest"]), int(support["newest"])
        first_debug = int(support["first_debug_offsets"])
        size_max = int(support["debug_size_max"])
        debian = tuple(int(minor) for minor in support.get("debian_unstable", ()))
    except (KeyError, TypeError, ValueError) as error:
        raise SpecError("[support] needs oldest, newest, first_debug_offsets, debug_size_max "
                        "(%s)" % error)
    raw_versions = data.get("versions", {})
    versions = {}
    for minor in range(oldest, newest + 1):
        text = "3.%d" % minor
        if text not in raw_versions:
            raise SpecError("version %s is in the supported range but has no [versions.\"%s\"]"
                            % (text, text))
        raw = _resolve(raw_versions, text)
        unknown = set(raw) - set(GROUPS) - {"frame_model", "line_table", "headers",
                                            "debug_offsets"}
        if unknown:
            raise SpecError("%s: unknown keys %s" % (text, ", ".join(sorted(unknown))))
        if raw.get("frame_model") not in FRAME_MODELS or raw.get("line_table") not in LINE_TABLES:
            raise SpecError("%s: frame_model must be one of %s and line_table one of %s" % (
                text, ", ".join(FRAME_MODELS), ", ".join(LINE_TABLES)))
        fields = {}
        for group in GROUPS:
            for name, entry in raw.get(group, {}).items():
                field = _field(text, group, name, entry)
                if field is not None:
                    fields[field.key] = field
        version = Version(minor, raw["frame_model"], raw["line_table"],
                          list(raw.get("headers", [])), fields, raw.get("debug_offsets"))
        if version.reads_debug_offsets != (minor >= first_debug):
            raise SpecError("%s: versions from 3.%d on have a debug_offsets shape, older ones "
                            "none" % (text, first_debug))
        words = version.debug_words()
        for field in fields.values():
            if field.debug and not version.reads_debug_offsets:
                raise SpecError("%s %s: `debug` in a version without _Py_DebugOffsets" % (
                    text, field.key))
            for name in filter(None, (field.debug, field.relative_to)):
                if name not in words:
                    raise SpecError("%s %s: %s is not in its debug_offsets shape" % (
                        text, field.key, name))
                section = field.within or name.split(".")[0]
                if (field.width is not None or field.within) and section + ".size" not in words:
                    raise SpecError("%s %s: section %s has no size to check the offset "
                                    "against" % (text, field.key, section))
        versions[minor] = version
    extra = set(raw_versions) - {"3.%d" % minor for minor in range(oldest, newest + 1)}
    if extra:
        raise SpecError("versions outside the supported range: %s" % ", ".join(sorted(extra)))
    return Spec(oldest, newest, debian, first_debug, size_max, versions)


if __name__ == "__main__":
    spec = load()
    print("CPython 3.%d to 3.%d; fetched from Debian unstable: %s" % (
        spec.oldest, spec.newest, ", ".join("3.%d" % m for m in spec.debian_unstable)))
    for version in spec.versions.values():
        print("  %s: %d fields, %s" % (version.text, len(version.fields), (
            "_Py_DebugOffsets of %d words" % version.debug_table_words())
            if version.reads_debug_offsets else "transcribed table"))
