"""Target program: a second interpreter kept alive (3.12+: `_interpreters`, or 3.12's
`_xxsubinterpreters`) while the main one compiles a new function every few milliseconds and
spins in it. From 3.13 each interpreter numbers its own code objects, so spyglass must not take
the main interpreter's code counter as proof that a cached code object is unchanged. A thread
waits meanwhile: with a second interpreter, the GIL's count of changes proves no stack unchanged
either (test_unchanged_stacks.py).

Prints `ready {json}` first.
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stackinfo  # noqa: E402

try:
    import _interpreters as interpreters  # 3.13+
except ImportError:
    import _xxsubinterpreters as interpreters  # 3.12

SOURCE = "def churned_{n}(deadline, clock):\n    while clock() < deadline:\n        pass\n"


def main():
    second = interpreters.create()
    threading.Thread(target=threading.Event().wait, daemon=True).start()
    stackinfo.announce_ready()
    n = 0
    while True:
        namespace = {}
        exec(compile(SOURCE.format(n=n % 4), "<churned>", "exec"), namespace)
        namespace["churned_%d" % (n % 4)](time.monotonic() + 0.005, time.monotonic)
        n += 1
    interpreters.destroy(second)


if __name__ == "__main__":
    main()
