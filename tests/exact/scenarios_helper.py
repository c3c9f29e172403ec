"""A module-level function marked with @spyglass.trace, for the pickling and identity checks."""
import spyglass


def helper_traced(x):
    return x * 2


HELPER_BEFORE = helper_traced
helper_traced = spyglass.trace(helper_traced)
