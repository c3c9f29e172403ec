"""Real library code for the pattern tests: sympy's polynomial algebra (deep, many small
functions) called through the names its package re-exports (sympy.factor is defined in
sympy.polys.polytools), and json.dumps. Prints `ready`, then runs until killed."""

import json

import sympy


def work():
    x, y = sympy.symbols("x y")
    n = 0
    while True:
        n = n % 7 + 6
        sympy.factor(x ** n - y ** n)
        sympy.expand((x + y + 1) ** (n // 2))
        json.dumps({"n": n, "values": list(range(200))})


if __name__ == "__main__":
    print("ready", flush=True)
    work()
