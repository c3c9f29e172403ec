"""Target whose process changes under a sampler: argv[1] is
  fork   - forks a child every few milliseconds (children run a little Python, then _exit)
  exec   - after argv[2] seconds replaces itself (os.execv) with a plain sleeping Python
  exit   - after argv[2] seconds exits with status 0
  exit-status - after argv[2] seconds exits with status 3
while the main thread spins in `spin`. Prints `ready {"pid": ...}` first."""

import json
import os
import sys
import time


def spin(seconds):
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1
    return x


def main():
    mode = sys.argv[1]
    after = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    print("ready " + json.dumps({"pid": os.getpid(), "mode": mode}), flush=True)
    if mode == "fork":
        while True:
            spin(0.005)
            child = os.fork()
            if child == 0:
                spin(0.002)
                os._exit(0)
            os.waitpid(child, 0)
    spin(after)
    if mode == "exec":
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)"])
    sys.exit(3 if mode == "exit-status" else 0)


if __name__ == "__main__":
    main()
