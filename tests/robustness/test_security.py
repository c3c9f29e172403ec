"""spyglass never gains more than the user had: a process the user may not trace is refused with
one clear line (exit 4), by every command that attaches."""

import os

import pytest

import support
from conftest import program
from test_errors import spyglass_for_nobody, unprivileged_prefix  # noqa: F401 (fixture)


@pytest.mark.parametrize("command", ["dump", "record"])
def test_refuses_a_process_the_user_may_not_trace(robust_interpreter, start_target,
                                                  spyglass_for_nobody, command):  # noqa: F811
    if os.geteuid() != 0:
        pytest.skip("needs root: runs spyglass as `nobody` against a root-owned target")
    target = start_target(robust_interpreter, program("many_threads.py"), 2)
    args = ["dump", str(target.pid)] if command == "dump" else [
        "record", "-p", str(target.pid), "-d", "1", "-f", "blocked_worker"]
    result = support.run_command(unprivileged_prefix() + [spyglass_for_nobody] + args, 30)
    message = support.assert_clean_failure(result, support.EXIT_PERMISSION)
    assert "permission" in message.lower() or "not allowed" in message.lower(), message
    assert support.thread_states(target.pid), "the target died"
