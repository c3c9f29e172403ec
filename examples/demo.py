"""`make demo`: the first thing a new user sees. Starts the example program (demo_app.py), times
three of its functions for a few seconds with `spyglass record`, prints the table, and stops the
program. Exits non-zero, saying why, if anything fails.

    python3 examples/demo.py --spyglass build/spyglass
"""

import argparse
import os
import select
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FUNCTIONS = ["heavy_computation", "disk_io", "network_request"]


def fail(message):
    print("demo: " + message, file=sys.stderr)
    return 1


def wait_for_ready(app, timeout):
    """The pid from the app's `ready PID` line, or None if it did not come in time."""
    deadline = time.monotonic() + timeout
    output = b""
    while b"\n" not in output:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        readable, _, _ = select.select([app.stdout], [], [], remaining)
        if readable:
            chunk = os.read(app.stdout.fileno(), 4096)
            if not chunk:
                return None
            output += chunk
    words = output.split(b"\n", 1)[0].split()
    if len(words) != 2 or words[0] != b"ready" or not words[1].isdigit():
        return None
    return int(words[1])


def stop(app):
    if app.poll() is None:
        app.send_signal(signal.SIGINT)  # the app finishes its job and leaves
        try:
            app.wait(timeout=5)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spyglass", default=os.path.join(HERE, "..", "build", "spyglass"),
                        help="the spyglass command (default: build/spyglass)")
    parser.add_argument("--python", default=shutil.which("python3") or sys.executable,
                        help="the interpreter that runs the example program (default: python3)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds to profile")
    args = parser.parse_args()

    spyglass = os.path.abspath(args.spyglass)
    if not (os.path.isfile(spyglass) and os.access(spyglass, os.X_OK)):
        return fail("no spyglass command at %s: build it first (make build)" % spyglass)
    app_path = os.path.join(HERE, "demo_app.py")
    # The command as the reader can type it from here: build/spyglass after `make demo`.
    shown = os.path.relpath(spyglass)
    if shown.startswith(".."):
        shown = spyglass
    elif os.sep not in shown:
        shown = os.path.join(".", shown)
    try:
        app = subprocess.Popen([args.python, app_path], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE)
    except OSError as error:
        return fail("cannot start %s: %s" % (args.python, error))
    try:
        pid = wait_for_ready(app, timeout=30)
        if pid is None:
            return fail("the example program did not start (no `ready PID` line)")
        command = [spyglass, "record", "-p", str(pid), "-f"] + FUNCTIONS + [
            "--duration", "%g" % args.duration]
        print("Example program %s is running as process %d." % (os.path.basename(app_path), pid))
        print("$ %s %s" % (shown, " ".join(command[1:])), flush=True)
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL,
                                    timeout=args.duration + 60, check=False)
        except subprocess.TimeoutExpired:
            return fail("spyglass record did not finish in time")
        except OSError as error:
            return fail("cannot run %s: %s" % (spyglass, error))
        if result.returncode != 0:
            return fail("spyglass record failed with exit code %d" % result.returncode)
        if app.poll() is not None:
            return fail("the example program exited (code %d) while being profiled"
                        % app.returncode)
    finally:
        stop(app)
    print("\nTry it interactively: start `%s %s` in one terminal (it prints its PID) and run "
          "`%s attach PID` in another, then type `help`." % (
              os.path.basename(args.python), os.path.relpath(app_path), shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
