"""The WSGI application of tests/realprograms/wsgi_workers.py, in a program that imports
spyglass: with SPYGLASS_LISTEN=1 the control socket opens at import. Under gunicorn --preload
the master imports it, and each worker forked from the master opens its own socket at the fork,
timing already on when the master's is (tests/exact/test_family.py)."""

import spyglass  # noqa: F401  (SPYGLASS_LISTEN=1: the control socket opens here)
from wsgi_workers import app, handle_request  # noqa: F401

__all__ = ["app"]
