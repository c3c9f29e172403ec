"""The call tree's JSON form (from spyglass_export_sample): children never exceed parents, and the
chosen function's callers and callees add up to its time."""

import json


def walk(node):
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(current["children"])


def check_sums(tree):
    for node in walk(tree["root"]):
        children = sum(c["seconds"] for c in node["children"]) + node["hidden_seconds"]
        assert children <= node["seconds"] + 1e-9
        if tree["has_self"]:
            assert abs(children + node["self_seconds"] - node["seconds"]) < 1e-6
        for child in node["children"]:
            assert child["seconds"] <= node["seconds"] + 1e-9


def test_trees_add_up(any_profile):
    trees = json.loads((any_profile["dir"] / "sample.tree.json").read_text())
    check_sums(trees["program"])
    check_sums(trees["function"]["callers"])
    check_sums(trees["function"]["callees"])
    function = trees["function"]
    assert function["samples"] > 0
    assert abs(function["callers"]["root"]["seconds"] - function["seconds"]) < 1e-9
    assert abs(function["callees"]["root"]["seconds"] - function["seconds"]) < 1e-9
    assert abs(trees["program"]["root"]["seconds"] - any_profile["seconds"]) < 1e-6
