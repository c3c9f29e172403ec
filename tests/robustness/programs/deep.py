"""Target: one thread 20,000 Python frames deep (argv[1]), blocked at the bottom; prints
`ready {"depth": N}`. The recursion runs in a thread with a big C stack, since 3.8-3.10 use C
stack for each Python call."""

import json
import os
import sys
import threading

DEPTH = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
READ_FD, WRITE_FD = os.pipe()


def descend(depth):
    if depth > 1:
        return descend(depth - 1)
    print("ready " + json.dumps({"depth": DEPTH, "pid": os.getpid()}), flush=True)
    os.read(READ_FD, 1)


def main():
    sys.setrecursionlimit(DEPTH + 1000)
    threading.stack_size(512 * 1024 * 1024)
    thread = threading.Thread(target=descend, args=(DEPTH,), name="deep")
    thread.start()
    thread.join()


if __name__ == "__main__":
    main()
