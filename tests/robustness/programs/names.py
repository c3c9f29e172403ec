"""Target: frames whose names are non-ASCII (Latin-1, BMP, astral: each of CPython's compact
string kinds) and very long, in a non-ASCII file name; one thread blocks in each. Prints
`ready {json}` with the names expected."""

import json
import os
import sys
import threading

READ_FD, WRITE_FD = os.pipe()
LONG = 5000  # longer than spyglass's 4096-character limit on a name


def block():
    os.read(READ_FD, 1)


SOURCE = '''
def café_ß(started):
    started.release()
    block()

def 名前_関数(started):
    started.release()
    block()

def 𠀀_astral(started):
    started.release()
    block()

class K{long}:
    def method(self, started):
        started.release()
        block()

def f{medium}(started):
    started.release()
    block()
'''


def main():
    namespace = {"block": block}
    long_part = "x" * LONG
    medium = "m" * 1000
    filename = "<pröbe_名前_𠀀.py>"
    exec(compile(SOURCE.format(long=long_part, medium=medium), filename, "exec"), namespace)
    started = threading.Semaphore(0)
    targets = [namespace["café_ß"], namespace["名前_関数"], namespace["𠀀_astral"],
               namespace["K" + long_part]().method, namespace["f" + medium]]
    for function in targets:
        threading.Thread(target=function, args=(started,), daemon=True).start()
    for _ in targets:
        started.acquire()
    expected = {"pid": os.getpid(), "file": filename,
                "names": ["café_ß", "名前_関数", "𠀀_astral", "method", "f" + medium],
                "long_qualname": "K%s.method" % long_part}
    print("ready " + json.dumps(expected), flush=True)
    os.read(READ_FD, 1)


if __name__ == "__main__":
    main()
