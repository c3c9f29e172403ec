#!/usr/bin/env python3
"""Captures the memory images walker_bench walks: for each CPython interpreter found, a target
whose thread sits 64 Python frames deep (and a variant with 3 such threads) is saved with
`spyglass dump --capture`, which records every byte a walk reads.

    bench/micro/capture_images.py [--spyglass build/spyglass] [--out .cache/bench-images]

Images are named SOURCE-VERSION-tTHREADS.snap (e.g. pyenv-3.12.1-t3.snap), a few hundred KB
each; they are generated, never checked in. Capture again whenever the walker changes what it
reads (walker_bench says so when an image no longer holds the whole stack).
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "lib"))
import interpreters  # noqa: E402  (the tests' discovery of CPython builds)

DEPTH = 64  # Python frames of the chain on each thread (63 distinct functions + the leaf)

# The target: 63 distinct functions (so a cold walk reads 63 code objects' names), then a leaf
# that sleeps in C, so the stack does not move while it is captured. Every thread goes deep;
# the main thread prints "ready" once all of them are there. Runs on 3.6+.
TARGET = r'''
import os, sys, threading, time
DEPTH, THREADS = %d, int(sys.argv[1])
arrived = threading.Semaphore(0)
source = "".join("def f%%02d(leaf):\n    return f%%02d(leaf)\n" %% (i, i + 1)
                 for i in range(DEPTH - 2))
source += "def f%%02d(leaf):\n    return leaf()\n" %% (DEPTH - 2)
exec(source)
def sleep_forever():
    while True:
        time.sleep(3600)
def worker_leaf():
    arrived.release()
    sleep_forever()
def main_leaf():
    for _ in range(THREADS - 1):
        arrived.acquire()
    time.sleep(0.2)  # let the workers reach time.sleep itself
    print("ready %%d" %% os.getpid(), flush=True)
    sleep_forever()
for _ in range(THREADS - 1):
    threading.Thread(target=f00, args=(worker_leaf,), daemon=True).start()
f00(main_leaf)
''' % DEPTH


def find_interpreters(fetch: bool):
    """The local interpreters, and (when `fetch`) Debian unstable's builds of the versions
    the machine lacks (3.14, 3.15)."""
    found = [i for i in interpreters.discover_local() if i.supported]
    have = {i.minor for i in found}
    missing = [(3, minor) for minor in interpreters.DEBIAN_UNSTABLE_MINORS
               if (3, minor) not in have]
    if fetch and missing:
        for minor, result in sorted(interpreters.fetch_debian_unstable(missing).items()):
            if result.interpreter:
                found.append(result.interpreter)
            else:
                print("capture_images: no %d.%d: %s" % (minor + (result.problem,)),
                      file=sys.stderr)
    return found


def capture(spyglass: str, interpreter, threads: int, out_dir: Path) -> str:
    """Returns the image path, or raises RuntimeError saying why there is none."""
    path = out_dir / ("%s-t%d.snap" % (interpreter.test_id, threads))
    target = subprocess.Popen([interpreter.path, "-c", TARGET, str(threads)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=interpreters.clean_environment(),
                              text=True)
    try:
        line = target.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError("target did not start: %s" % target.stderr.read()[-500:])
        pid = int(line.split()[1])
        tmp = path.with_suffix(".tmp")
        completed = subprocess.run([spyglass, "dump", "--capture", str(tmp), str(pid)],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, timeout=60)
        if completed.returncode != 0 or not tmp.is_file():
            raise RuntimeError("spyglass dump --capture exited %d: %s" % (
                completed.returncode, completed.stderr.strip()[-500:]))
        os.replace(str(tmp), str(path))
        return str(path)
    finally:
        target.kill()
        target.wait()


def default_spyglass() -> str:
    return os.environ.get("SPYGLASS_BIN", str(REPO_ROOT / "build" / "spyglass"))


def capture_all(spyglass: str, out_dir: Path, wanted=None, fetch=True, thread_counts=(1, 3),
                log=print):
    """Captures every image; returns {image name: path}, printing a line per image."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images = {}
    for interpreter in find_interpreters(fetch):
        if wanted and interpreter.minor_text not in wanted and interpreter.version_text not in wanted:
            continue
        for threads in thread_counts:
            started = time.monotonic()
            try:
                path = capture(spyglass, interpreter, threads, out_dir)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
                log("  %-26s t%d: no image (%s)" % (interpreter.test_id, threads, error))
                continue
            images[Path(path).stem] = path
            log("  %-26s t%d: %s (%d KB, %.1f s)" % (
                interpreter.test_id, threads, path, os.path.getsize(path) // 1024,
                time.monotonic() - started))
    return images


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spyglass", default=default_spyglass(), help="the spyglass command")
    parser.add_argument("--out", default=str(REPO_ROOT / ".cache" / "bench-images"),
                        help="folder for the images (default .cache/bench-images)")
    parser.add_argument("--interpreters", help="comma-separated minor versions, e.g. 3.11,3.15")
    parser.add_argument("--no-fetch", action="store_true",
                        help="do not fetch Debian unstable's 3.14+ when they are not there")
    args = parser.parse_args()
    wanted = set(args.interpreters.split(",")) if args.interpreters else None
    images = capture_all(args.spyglass, Path(args.out), wanted, fetch=not args.no_fetch)
    print("%d images in %s" % (len(images), args.out))
    return 0 if images else 1


if __name__ == "__main__":
    sys.exit(main())
