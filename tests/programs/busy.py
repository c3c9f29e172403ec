"""Target program: a single thread computing in pure Python forever, so it holds the GIL.

Prints `ready {json}` first. Runs on every supported CPython (3.8+).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stackinfo  # noqa: E402


def spin():
    total = 0
    while True:
        total = (total + 1) % 1000003


if __name__ == "__main__":
    stackinfo.announce_ready()
    spin()
