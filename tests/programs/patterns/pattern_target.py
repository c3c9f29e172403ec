"""The program of the pattern table (table.json beside it): each function the table names runs
in turn, a few milliseconds each. `python pattern_target.py` prints `ready` and runs until
killed (for the sampler); `--rounds N` stops after N rounds (for exact mode's `run`)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import shop  # noqa: E402
from shop import orders, util  # noqa: E402


def spin(seconds=0.002):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class Worker:
    def process(self, spin):
        spin()


def handle(spin):
    spin()


def main():
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else None
    print("ready", flush=True)
    done = 0
    while rounds is None or done < rounds:
        shop.checkout(spin)
        orders.Cart().total(spin)
        orders.Outer.Worker().process(spin)
        orders.outer(spin)
        util.checkout(spin)
        util.Worker().process(spin)
        shop.open_shop(spin)
        Worker().process(spin)
        handle(spin)
        done += 1


if __name__ == "__main__":
    main()
