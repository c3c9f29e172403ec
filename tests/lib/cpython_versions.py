"""The supported CPython versions, read from the one spec, src/cpython/versions.toml.

Every test suite, the benchmark and the tools take the supported range from here, so adding a
minor version is an edit of that file (plus tests), not of each consumer.
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = REPO_ROOT / "src" / "cpython" / "versions.toml"


def _load_toml(path: Path) -> dict:
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        try:
            import tomli as tomllib  # the same parser, from PyPI, for older Pythons
        except ImportError:
            sys.exit("reading %s needs Python 3.11+ (tomllib) or the tomli package" % path)
    with open(path, "rb") as spec:
        return tomllib.load(spec)


SPEC = _load_toml(SPEC_PATH)
OLDEST_MINOR = int(SPEC["support"]["oldest"])
NEWEST_MINOR = int(SPEC["support"]["newest"])
# Minor versions of CPython 3 that spyglass supports, oldest first.
SUPPORTED_MINORS = tuple(range(OLDEST_MINOR, NEWEST_MINOR + 1))
# Minor versions fetched from Debian unstable by scripts/fetch-python.sh for the tests.
DEBIAN_UNSTABLE_MINORS = tuple(int(minor) for minor in SPEC["support"]["debian_unstable"])
# "3.8 to 3.15", as the documentation says it.
RANGE_TEXT = "3.%d to 3.%d" % (OLDEST_MINOR, NEWEST_MINOR)
