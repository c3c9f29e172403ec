"""Target: argv[1] threads (default 300), all blocked in os.read inside `blocked_worker`; prints
`ready {"threads": N}` once all run."""

import json
import os
import sys
import threading

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 300
READ_FD, WRITE_FD = os.pipe()


def blocked_worker(started):
    started.release()
    os.read(READ_FD, 1)


def main():
    threading.stack_size(256 * 1024)
    started = threading.Semaphore(0)
    for i in range(COUNT):
        threading.Thread(target=blocked_worker, args=(started,), daemon=True).start()
    for _ in range(COUNT):
        started.acquire()
    print("ready " + json.dumps({"threads": COUNT, "pid": os.getpid()}), flush=True)
    os.read(READ_FD, 1)


if __name__ == "__main__":
    main()
