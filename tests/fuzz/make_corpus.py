#!/usr/bin/env python3
"""Builds the walker fuzzer's seed corpus: one captured memory image (`spyglass dump --capture`)
of tests/fuzz/corpus_target.py per CPython found (the integration tests' interpreter discovery),
plus a few small random images, into the given folder. Images are a few KB each.

Usage: make_corpus.py SPYGLASS_BIN OUT_DIR
"""

import os
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
import interpreters  # noqa: E402


def capture(spyglass, interpreter, out_dir):
    target = subprocess.Popen([interpreter.path, str(HERE / "corpus_target.py")],
                              stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              env=interpreters.clean_environment(), start_new_session=True)
    try:
        line = target.stdout.readline()
        if not line.startswith(b"ready"):
            return "no ready line"
        path = out_dir / ("capture-%s" % interpreter.test_id)
        result = subprocess.run([spyglass, "dump", "--capture=" + str(path), str(target.pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        if result.returncode != 0 or not path.is_file():
            return "exit %d: %s" % (result.returncode,
                                    result.stderr.decode(errors="replace").strip())
        return None
    finally:
        os.killpg(target.pid, 9)
        target.wait()


def main():
    spyglass, out_dir = sys.argv[1], Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    captured = 0
    found = [i for i in interpreters.discover_local() if i.supported]
    # Debian unstable's builds (3.14, 3.15) when they can be had: their _Py_DebugOffsets shapes.
    have = {i.minor for i in found}
    missing = [(3, m) for m in interpreters.DEBIAN_UNSTABLE_MINORS if (3, m) not in have]
    for minor, result in sorted(interpreters.fetch_debian_unstable(missing).items()):
        if result.interpreter:
            found.append(result.interpreter)
        else:
            print("make_corpus: no %d.%d: %s" % (minor + (result.problem,)))
    for interpreter in found:
        problem = capture(spyglass, interpreter, out_dir)
        if problem:
            print("make_corpus: %s not captured: %s" % (interpreter.test_id, problem))
        else:
            captured += 1
    # Random images, one per version selector (see fuzz_walker.cpp).
    rng = random.Random(7)
    for selector in range(len(interpreters.SUPPORTED_MINORS)):
        data = bytes([selector, 0]) + bytes(rng.getrandbits(8) for _ in range(512))
        (out_dir / ("random-%d" % selector)).write_bytes(data)
    print("make_corpus: %d captured images in %s" % (captured, out_dir))
    return 0 if captured else 1


if __name__ == "__main__":
    sys.exit(main())
