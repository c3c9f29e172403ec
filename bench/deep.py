"""A single-thread target with a 64-deep stack of distinct functions that spins at its leaf.

    python bench/deep.py [--seconds S] [--depth N] [--truth FILE]

bench/run.py samples it for the cost of walking a deep stack and the sustained rate (issue 4:
>= 100,000 samples/s on 3.11+, >= 20,000 on 3.8-3.10). Each level is a function of its own
(`f00` ... `f62`, then `leaf`), so a walk meets as many distinct code objects as a real program
of that depth would. It ends like the reference workload: a "done rounds=1 elapsed=S" line and,
with --truth, a JSON file with `leaf`'s true inclusive time.
"""

import argparse
import json
import time


def leaf(deadline):
    n = 0
    while time.monotonic() < deadline:
        for i in range(1000):
            n += i
    return n


def build_chain(depth):
    """f00 -> f01 -> ... -> leaf, depth functions in all."""
    namespace = {"leaf": leaf}
    source = []
    for level in range(depth - 1):
        callee = "f%02d" % (level + 1) if level + 1 < depth - 1 else "leaf"
        source.append("def f%02d(deadline):\n    return %s(deadline)\n" % (level, callee))
    exec(compile("".join(source), "<deep>", "exec"), namespace)
    return namespace["f00"] if depth > 1 else leaf


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--depth", type=int, default=64)
    parser.add_argument("--truth")
    args = parser.parse_args()
    chain = build_chain(args.depth)
    start = time.perf_counter()
    chain(time.monotonic() + args.seconds)
    elapsed = time.perf_counter() - start
    if args.truth:
        with open(args.truth, "w") as out:
            json.dump({"functions": {"leaf": {"seconds": elapsed, "calls": 1}}}, out)
    print("done rounds=1 elapsed=%.6f" % elapsed, flush=True)


if __name__ == "__main__":
    main()
