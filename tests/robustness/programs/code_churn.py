"""Target: new functions compiled, run and freed in a loop, so code objects' addresses are
reused. Function N is named gen_NNNNNNNN, lives in the file <gen_NNNNNNNN> and spins for
SPIN_SECONDS on line (N % 40) + 3; then it is deleted and collected. Prints `ready` after the first
few, and writes the numbers it ran to the file given as argv[1] when it gets SIGTERM... or
continuously (one line per function, flushed), so the test knows the truth."""

import gc
import sys
import time

SPIN_SECONDS = 0.03
TEMPLATE = "def gen_{n:08d}(deadline, clock):\n    x = 0\n{pad}    while clock() < deadline: x += 1\n    return x\n"


def run_forever(log):
    n = 0
    while True:
        pad = "    pass\n" * (n % 40)
        source = TEMPLATE.format(n=n, pad=pad)
        namespace = {}
        exec(compile(source, "<gen_%08d>" % n, "exec"), namespace)
        function = namespace["gen_%08d" % n]
        function(time.monotonic() + SPIN_SECONDS, time.monotonic)
        log.write("%d %d\n" % (n, (n % 40) + 3))
        log.flush()
        del function, namespace
        gc.collect()
        n += 1
        if n == 3:
            print("ready", flush=True)


if __name__ == "__main__":
    with open(sys.argv[1], "w") as log:
        run_forever(log)
