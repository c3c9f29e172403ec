"""The pattern table (table.json) as the real-process tests use it: which rows apply to an
interpreter, and which table functions a result's `matches` name. Imported by
tests/integration/test_patterns.py (the spyglass command) and tests/exact/test_patterns.py."""

import json
import os

HERE = os.path.dirname(os.path.realpath(__file__))
PROGRAM = os.path.join(HERE, "pattern_target.py")

with open(os.path.join(HERE, "table.json")) as _f:
    TABLE = json.load(_f)


def rows(minor):
    """The rows that hold on an interpreter of version `minor` ((3, 10)...)."""
    out = []
    for row in TABLE["rows"]:
        since = tuple(int(part) for part in row.get("since", "3.0").split("."))
        if minor >= since:
            out.append(row)
    return out


def patterns(minor):
    return [row["pattern"] for row in rows(minor)]


def _last_part(qualname):
    return qualname.replace(".<locals>", "").rsplit(".", 1)[-1]


# (file relative to HERE, last part of the qualified name) -> table id. Before 3.11 qualified
# names of nested functions and classes are shorter; their last part is the same.
_BY_FILE_AND_NAME = {(f["file"], _last_part(f["qualname"])): fid
                     for fid, f in TABLE["functions"].items()}


def matched_ids(matches):
    """(table ids, problems) for a result's `matches`: functions outside the program are left
    out (another module's function of the same name), module and class bodies too."""
    ids, problems = set(), []
    for match in matches:
        path = os.path.realpath(match["file"]) if os.path.isabs(match["file"]) else None
        if path is None or not path.startswith(HERE + os.sep):
            continue
        relative = os.path.relpath(path, HERE)
        if match["function"] in TABLE["bodies"]:
            continue
        fid = _BY_FILE_AND_NAME.get((relative, _last_part(match["function"])))
        if fid is None:
            problems.append("a function the table does not know: %r" % (match,))
        else:
            ids.add(fid)
    return ids, problems


def mismatches(results_by_name, minor):
    """One line per row whose matches differ from the table's, given {pattern: result item}."""
    out = []
    for row in rows(minor):
        item = results_by_name.get(row["pattern"])
        if item is None:
            out.append("%s: no result row" % row["pattern"])
            continue
        ids, problems = matched_ids(item["matches"])
        out += ["%s: %s" % (row["pattern"], problem) for problem in problems]
        if ids != set(row["matches"]):
            out.append("%s: matched %s, the table says %s" % (
                row["pattern"], sorted(ids), sorted(row["matches"])))
    return out
