"""A target in another mount namespace (as in a container): the interpreter's file, named in
/proc/PID/maps by its path inside that namespace, does not exist at that path for spyglass, which
must open it through /proc/PID/root/.

The target is Debian's static python3.11, run from a bind mount of /usr/bin that only its own
mount namespace has (`unshare --mount`): the mount point is an empty folder outside it. Needs
root (to create the namespace) and that interpreter; skipped, visibly, without them."""

import json
import os
import shutil
import subprocess

import pytest

from interpreters import Interpreter, probe_version
from support import assert_success
from test_dump import KNOWN_STACK_THREADS, check_stack, json_thread_for

SYSTEM_PYTHON = "/usr/bin/python3.11"


@pytest.fixture
def namespaced_python(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("creating a mount namespace needs root")
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is not installed")
    version = probe_version(SYSTEM_PYTHON)
    if version is None:
        pytest.skip("%s is not available" % SYSTEM_PYTHON)
    mount_point = tmp_path / "bin-in-namespace"
    mount_point.mkdir()
    wrapper = tmp_path / "python-in-namespace"
    # Private propagation: the bind mount stays inside the new namespace.
    wrapper.write_text(
        "#!/bin/sh\n"
        "exec unshare --mount --propagation private sh -c "
        "'mount --bind %s \"$0\" && exec \"$0/%s\" \"$@\"' %s \"$@\"\n"
        % (os.path.dirname(SYSTEM_PYTHON), os.path.basename(SYSTEM_PYTHON), mount_point))
    wrapper.chmod(0o755)
    probe = subprocess.run([str(wrapper), "-c", "pass"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    if probe.returncode != 0:
        pytest.skip("cannot create a mount namespace here: %s" % probe.stderr.strip())
    return Interpreter("namespaced-debian", str(wrapper), version), mount_point


def test_dump_of_a_process_in_another_mount_namespace(namespaced_python, start_target,
                                                      run_spyglass):
    interpreter, mount_point = namespaced_python
    target = start_target(interpreter, "known_stack.py")
    target.wait_until_all_threads_sleep(KNOWN_STACK_THREADS)
    binary_inside = os.path.join(str(mount_point), os.path.basename(SYSTEM_PYTHON))
    with open("/proc/%d/maps" % target.pid) as maps:
        assert binary_inside in maps.read(), "the target does not run from the bind mount"
    assert not os.path.exists(binary_inside), "the bind mount leaked out of the namespace"

    result = run_spyglass(["dump", "--json", target.pid])
    assert_success(result)
    dump = json.loads(result.stdout)
    assert dump["python"]["binary"] == binary_inside, dump["python"]
    assert len(dump["threads"]) == KNOWN_STACK_THREADS, result.stdout
    for expected_thread in target.expected["threads"]:
        check_stack(json_thread_for(dump, expected_thread)["frames"], expected_thread,
                    check_details=True)
