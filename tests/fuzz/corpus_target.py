"""Target whose stacks make a varied seed image for the walker fuzzer: several threads, a
generator, a method, a non-ASCII and a long qualified name, some recursion. Prints `ready` and
then sleeps until killed. Runs on every supported CPython (3.8+)."""

import sys
import threading
import time


def recurse(depth, event):
    if depth > 0:
        return recurse(depth - 1, event)
    event.wait()


def größe_π(event):  # non-ASCII names: UCS-1 and UCS-2 strings in the code object
    return recurse(12, event)


class Outer:
    class Inner_with_a_rather_long_name_to_exercise_the_string_reader_of_spyglass_xxxxxxxx:
        def method(self, event):
            return größe_π(event)


def generator(event):
    yield recurse(3, event)


def main():
    event = threading.Event()
    threads = [
        threading.Thread(target=lambda: Outer.Inner_with_a_rather_long_name_to_exercise_the_string_reader_of_spyglass_xxxxxxxx().method(event), daemon=True),
        threading.Thread(target=lambda: list(generator(event)), daemon=True),
        threading.Thread(target=recurse, args=(40, event), daemon=True),
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
