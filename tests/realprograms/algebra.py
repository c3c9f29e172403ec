"""Symbolic algebra with sympy, on one thread: deep library stacks that change every few
microseconds, many generators, and sympy's caches (every problem differs, so the caches are
consulted and filled, never a shortcut past the work).

Timed functions (truth.py): `solve_problems` (the whole session), and the three kinds of
problems it takes in turn: `simplify_expressions`, `integrate_functions`, `solve_equations`.

    python algebra.py --truth truth.json [--scale 1] [--wait]
"""

import sys

import sympy
from sympy import exp, sin, symbols

from truth import Truth, run_program

TRUTH = Truth("algebra")
FUNCTIONS = ("solve_problems", "simplify_expressions", "integrate_functions", "solve_equations")
ROUNDS = 12  # at scale 1: about 2-3 s on CPython 3.12
x, y, z = symbols("x y z")


def simplify_expressions(n: int) -> int:
    began = TRUTH.begin()
    try:
        size = len(str(sympy.cancel((x ** 2 + n * x * y + y ** 2) * (x - n) / (x ** 2 - n ** 2))))
        size += len(str(sympy.factor(sympy.expand((x + n) ** 3 * (y - x) ** 2))))
        size += len(str(sympy.together(1 / (x + n) + 1 / (x - n) + y / (x * y + n))))
        size += len(str(sympy.gcd(x ** 4 - n ** 4, x ** 3 - n * x ** 2 + x - n)))
        size += len(str(sympy.apart((x + n) / ((x + 1) * (x + n + 2) * (x - 3)), x)))
        return size
    finally:
        TRUTH.add("simplify_expressions", began)


def integrate_functions(n: int) -> int:
    began = TRUTH.begin()
    try:
        size = len(str(sympy.integrate((x ** 3 + n * x + 1) * (x - n), x)))
        size += len(str(sympy.diff(sin(n * x) * exp(x ** 2) / (1 + x ** 2), x)))
        size += len(str(sympy.limit(sin(n * x) / x, x, 0)))
        size += len(str(sympy.expand_trig(sin(x + n * y))))
        size += len(str(sympy.summation(1 / (z * (z + n)), (z, 1, sympy.oo))))
        return size
    finally:
        TRUTH.add("integrate_functions", began)


def solve_equations(n: int) -> int:
    began = TRUTH.begin()
    try:
        size = len(str(sympy.solve([x + n * y - 3, n * x - y + z, x + y + z - n], [x, y, z])))
        size += len(str(sympy.solve(x ** 2 - (n + 1) * x + n, x)))
        size += len(str(sympy.Matrix(3, 3, lambda row, column: (row + 1) * x ** column + n * row)
                        .det()))
        size += len(str(sympy.Poly(x ** 3 - (n + 3) * x ** 2 + (3 * n + 2) * x - 2 * n, x)
                        .all_roots()))
        return size
    finally:
        TRUTH.add("solve_equations", began)


def solve_problems(rounds: int) -> int:
    began = TRUTH.begin()
    try:
        size = 0
        for n in range(1, rounds + 1):
            size += simplify_expressions(n)
            size += integrate_functions(n)
            size += solve_equations(n)
        return size
    finally:
        TRUTH.add("solve_problems", began)


if __name__ == "__main__":
    sys.exit(run_program(TRUTH, FUNCTIONS, solve_problems, ROUNDS))
