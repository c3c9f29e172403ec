"""The supported CPython versions, from the one spec, src/cpython/versions.toml (read by
tools/cpython_spec.py).

Every test suite, the benchmark and the tools take the supported range from here, so adding a
minor version is an edit of that file (plus tests), not of each consumer.
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tools"))
import cpython_spec  # noqa: E402

SPEC = cpython_spec.load()
OLDEST_MINOR = SPEC.oldest
NEWEST_MINOR = SPEC.newest
# Minor versions of CPython 3 that spyglass supports, oldest first.
SUPPORTED_MINORS = SPEC.minors
# Minor versions fetched from Debian unstable by scripts/fetch-python.sh for the tests.
DEBIAN_UNSTABLE_MINORS = SPEC.debian_unstable
# The first minor version whose layout comes from the target's _Py_DebugOffsets.
FIRST_DEBUG_OFFSETS_MINOR = SPEC.first_debug_offsets
# "3.8 to 3.15", as the documentation says it.
RANGE_TEXT = "3.%d to 3.%d" % (OLDEST_MINOR, NEWEST_MINOR)
