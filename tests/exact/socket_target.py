"""A program that opens exact mode's control socket and works until a stop file appears."""
import os
import sys
import time

import spyglass


def work():
    time.sleep(0.001)


def other():
    return 1


def main():
    stop_file = sys.argv[1]
    path = spyglass.listen()
    print("ready %d %s" % (os.getpid(), path), flush=True)
    deadline = time.time() + 60
    while time.time() < deadline and not os.path.exists(stop_file):
        work()
        other()


if __name__ == "__main__":
    main()
