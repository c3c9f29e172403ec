"""Deep recursion, on one thread: stacks hundreds of frames deep that grow and shrink by
hundreds of frames many times a millisecond. A recursive evaluator over deep expression trees,
a recursive-descent parser of deeply nested text (three functions calling each other), and a
backtracking search (shallow, but up and down all the time).

Timed functions (truth.py): `solve_puzzles` (the whole session), `evaluate`, `parse_expression`
and `place_queens`; the recursive ones time their outermost call only, as spyglass counts a
function once per sample however deep it recurses.

    python recursion.py --truth truth.json [--scale 1] [--wait]
"""

import random
import sys
from typing import List, Tuple

from truth import Truth, run_program

TRUTH = Truth("recursion")
FUNCTIONS = ("solve_puzzles", "evaluate", "parse_expression", "place_queens")
ROUNDS = 80  # at scale 1: about 2-3 s on CPython 3.12
MAX_DEPTH = 400  # frames of one recursion; under the default limit of 1000 with room to spare


def small_tree(rng: random.Random, depth: int):
    if depth == 0:
        return rng.randint(1, 9)
    return (rng.choice("+-*"), small_tree(rng, depth - 1), small_tree(rng, depth - 1))


def build_tree(rng: random.Random, depth: int):
    """A deep expression tree: a spine of `depth` operators with a small full tree on the
    other side of each, so one evaluation visits thousands of nodes."""
    node = rng.randint(1, 9)
    for _ in range(depth):
        side = small_tree(rng, rng.randint(0, 3))
        node = (rng.choice("+-*"), node, side) if rng.random() < 0.5 else (
            rng.choice("+-*"), side, node)
    return node


def evaluate(node, depth: int = 0) -> int:
    began = TRUTH.begin() if depth == 0 else 0.0
    try:
        if isinstance(node, int):
            return node
        operator, left, right = node
        a = evaluate(left, depth + 1)
        b = evaluate(right, depth + 1)
        if operator == "+":
            return (a + b) % 1000003
        if operator == "-":
            return (a - b) % 1000003
        return (a * b) % 1000003
    finally:
        if depth == 0:
            TRUTH.add("evaluate", began)


def nested_text(rng: random.Random, depth: int) -> str:
    """Nested parentheses `depth` deep, a short flat expression beside each level."""
    text = str(rng.randint(1, 9))
    for _ in range(depth):
        flat = " ".join("%d %s" % (rng.randint(1, 9), rng.choice("+-*"))
                        for _ in range(rng.randint(1, 6)))
        text = "(%s %s %d)" % (text, rng.choice("+-*"), rng.randint(1, 9)) if rng.random() < 0.5 \
            else "(%s %s)" % (flat, text)
    return text


class Parser:
    def __init__(self, text: str):
        self.tokens = text.replace("(", " ( ").replace(")", " ) ").split()
        self.position = 0

    def next(self) -> str:
        token = self.tokens[self.position]
        self.position += 1
        return token


def parse_expression(parser: Parser, depth: int = 0) -> int:
    began = TRUTH.begin() if depth == 0 else 0.0
    try:
        value = parse_term(parser, depth)
        while parser.position < len(parser.tokens) and parser.tokens[parser.position] in "+-":
            operator = parser.next()
            other = parse_term(parser, depth)
            value = (value + other if operator == "+" else value - other) % 1000003
        return value
    finally:
        if depth == 0:
            TRUTH.add("parse_expression", began)


def parse_term(parser: Parser, depth: int) -> int:
    value = parse_factor(parser, depth)
    while parser.position < len(parser.tokens) and parser.tokens[parser.position] == "*":
        parser.next()
        value = value * parse_factor(parser, depth) % 1000003
    return value


def parse_factor(parser: Parser, depth: int) -> int:
    token = parser.next()
    if token == "(":
        value = parse_expression(parser, depth + 1)
        parser.next()  # ")"
        return value
    return int(token)


def place_queens(size: int, row: int = 0, columns: Tuple[int, ...] = ()) -> int:
    began = TRUTH.begin() if row == 0 else 0.0
    try:
        if row == size:
            return 1
        found = 0
        for column in range(size):
            if all(column != other and abs(column - other) != row - index
                   for index, other in enumerate(columns)):
                found += place_queens(size, row + 1, columns + (column,))
        return found
    finally:
        if row == 0:
            TRUTH.add("place_queens", began)


def solve_puzzles(rounds: int) -> List[int]:
    began = TRUTH.begin()
    try:
        rng = random.Random(12)
        answers = []
        for _ in range(rounds):
            tree = build_tree(rng, rng.randint(MAX_DEPTH // 4, MAX_DEPTH))
            answers += [evaluate(tree) for _ in range(8)]
            # Each nesting level is three frames (expression, term, factor).
            text = nested_text(rng, rng.randint(MAX_DEPTH // 12, MAX_DEPTH // 3))
            answers += [parse_expression(Parser(text)) for _ in range(8)]
            answers.append(place_queens(7))
        return answers
    finally:
        TRUTH.add("solve_puzzles", began)


if __name__ == "__main__":
    sys.exit(run_program(TRUTH, FUNCTIONS, solve_puzzles, ROUNDS))
