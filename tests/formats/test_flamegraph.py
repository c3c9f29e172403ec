"""The flame graph page, loaded in headless Chromium: no console errors, no network, and one frame
drawn per node of the profile's stack tree."""

import re
import shutil
import subprocess

import pytest

from conftest import read_collapsed

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--enable-logging=stderr", "--v=0"]


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is needed (Debian's chromium: scripts/install-deps.sh test)")


def load(page, tmp_path, budget_ms=10000):
    """(DOM after scripts ran, console messages) for `page`."""
    result = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}",
         f"--virtual-time-budget={budget_ms}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console


def tree_nodes(collapsed):
    """Nodes of the flame graph: distinct stack prefixes, plus the root."""
    prefixes = set()
    for frames, _ in collapsed:
        for depth in range(1, len(frames) + 1):
            prefixes.add(tuple(frames[:depth]))
    return len(prefixes) + 1


@pytest.mark.parametrize("variant", ["sample", "merged", "deep"])
def test_page_draws_every_frame(variant, request, tmp_path):
    profile = request.getfixturevalue(variant)
    page = profile["dir"] / "sample.html"
    dom, console = load(page, tmp_path)
    assert not console, "console messages:\n" + "\n".join(console)
    assert 'data-ready="true"' in dom, "the page's script did not finish"
    drawn = len(re.findall(r'<g [^>]*class="frame(?: fade)?"', dom))
    declared = int(re.search(r'data-frames="(\d+)"', dom).group(1))
    expected = tree_nodes(read_collapsed(profile["dir"] / "sample.folded"))
    assert drawn == declared == expected


def test_self_contained(sample):
    html = (sample["dir"] / "sample.html").read_text()
    # No resource from a network: every script and style is inline.
    assert not re.search(r'<script[^>]+src=', html)
    assert not re.search(r'<link[^>]+href=', html)
    assert "d3-flame-graph" in html or "d3-flamegraph" in html
    # A function named "odd</script><b>name" must not close the data's script element.
    assert html.count("</script>") == html.count("<script")
    assert "odd\\u003c/script\\u003e" in html


def test_chosen_functions_highlighted(sample):
    html = (sample["dir"] / "sample.html").read_text()
    data = re.search(r'<script type="application/json" id="spyglass-data">(.*?)</script>',
                     html, re.S).group(1)
    chosen = set(re.findall(r'"function":"([^"]+)","file":"[^"]*","line":\d+,"chosen":true', data))
    assert chosen == {"heavy_computation", "Worker.process", "disk_io"}
