"""The static SVG flame graph (`-o flame.svg`): a well-formed SVG document that a browser draws
(headless Chromium renders it to a picture), with one frame per node of the profile's stack
tree that is wide enough to see, and the chosen functions in blue."""

import xml.etree.ElementTree as ElementTree

import pytest

from conftest import read_collapsed
from test_flamegraph import FLAGS, chromium, tree_nodes

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("variant", ["sample", "merged", "deep"])
def test_well_formed_with_every_frame(variant, request):
    profile = request.getfixturevalue(variant)
    root = ElementTree.parse(str(profile["dir"] / "sample.svg")).getroot()
    assert root.tag == SVG + "svg"
    frames = [g for g in root.iter(SVG + "g") if g.get("class") == "f"]
    expected = tree_nodes(read_collapsed(profile["dir"] / "sample.folded"))
    left_out = root.find(".//" + SVG + "text[@y='59']").text
    if "left out" in left_out:  # too narrow to draw: said in the legend
        assert len(frames) < expected
    else:
        assert len(frames) == expected


def test_chosen_functions_are_blue(sample):
    root = ElementTree.parse(str(sample["dir"] / "sample.svg")).getroot()
    blue = set()
    for g in root.iter(SVG + "g"):
        rect = g.find(SVG + "rect")
        if rect is not None and rect.get("fill") == "#3b7ddd":
            blue.add(g.find(SVG + "title").text.split(" (")[0])
    assert blue == {"heavy_computation", "Worker.process", "disk_io"}


def test_a_browser_draws_it(sample, tmp_path):
    import subprocess

    picture = tmp_path / "flame.png"
    result = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}",
         f"--screenshot={picture}", "--window-size=1200,600",
         (sample["dir"] / "sample.svg").as_uri()], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    assert picture.stat().st_size > 5000, "a picture with something drawn in it"
