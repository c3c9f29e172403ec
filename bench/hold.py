"""Runs a script after a "go" line on stdin, so a profiler can attach before its work starts
and every tool sees the same whole run: `python hold.py SCRIPT ARGS...` prints "waiting PID",
waits, then runs SCRIPT as __main__ with ARGS (its functions keep SCRIPT's file name)."""
import os
import runpy
import sys

print("waiting %d" % os.getpid(), flush=True)
sys.stdin.readline()
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
