"""Target program: the main thread recurses to a given depth, then blocks.

Usage: deep_stack.py DEPTH. Prints `ready {json}` with the expected frames (see stackinfo.py):
DEPTH + 1 frames of descend() above <module>. Runs on every supported CPython (3.8+).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stackinfo  # noqa: E402


def descend(remaining):
    if remaining > 0:
        descend(remaining - 1)
    else:
        os.read(stackinfo.announce_and_block(), 1)


if __name__ == "__main__":
    depth = int(sys.argv[1])
    sys.setrecursionlimit(max(sys.getrecursionlimit(), depth + 100))
    descend(depth)
