"""Target program: prints `ready {"pid": N}` and sleeps until killed.

Deliberately runnable by any CPython from 2.7 on, so that tests can start interpreters spyglass
does not support and check how it refuses them.
"""

import os
import sys
import time

sys.stdout.write('ready {"pid": %d}\n' % os.getpid())
sys.stdout.flush()
while True:
    time.sleep(3600)
