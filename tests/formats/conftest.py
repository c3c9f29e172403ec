"""Fixtures for the format tests: files written by spyglass_export_sample (a synthetic profile
shaped like the bundled example), checked with the real consumers of each format."""

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPEEDSCOPE_VERSION = "1.25.0"


def _export_tool() -> Path:
    explicit = os.environ.get("SPYGLASS_EXPORT_SAMPLE")
    if explicit:
        return Path(explicit)
    build = Path(os.environ.get("SPYGLASS_BUILD", REPO / "build"))
    return build / "spyglass_export_sample"


def _export(directory: Path, *options: str) -> dict:
    tool = _export_tool()
    if not tool.exists():
        pytest.fail(f"{tool} not found: build the spyglass_export_sample target first "
                    "(or set SPYGLASS_EXPORT_SAMPLE)")
    subprocess.run([str(tool), str(directory), *options], check=True, timeout=120)
    expected = json.loads((directory / "expected.json").read_text())
    expected["dir"] = directory
    return expected


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    """The example profile, one frame per line."""
    return _export(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="session")
def merged(tmp_path_factory):
    """The example profile with lines merged into functions."""
    return _export(tmp_path_factory.mktemp("merged"), "--merge-lines")


@pytest.fixture(scope="session")
def deep(tmp_path_factory):
    """The example profile plus a thread 5,000 frames deep in recursion."""
    return _export(tmp_path_factory.mktemp("deep"), "--deep", "5000")


@pytest.fixture(scope="session", params=["sample", "merged", "deep"])
def any_profile(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def speedscope_schema():
    """speedscope's published file format schema, from its npm package (cached)."""
    cache = Path(os.environ.get("SPYGLASS_FORMATS_CACHE",
                                Path.home() / ".cache" / "spyglass-formats"))
    schema_path = cache / f"speedscope-{SPEEDSCOPE_VERSION}-file-format-schema.json"
    if not schema_path.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to fetch speedscope's schema (scripts/install-deps.sh test)")
        cache.mkdir(parents=True, exist_ok=True)
        out = subprocess.run([npm, "pack", "--silent", f"speedscope@{SPEEDSCOPE_VERSION}",
                              "--pack-destination", str(cache)],
                             check=True, capture_output=True, text=True, timeout=300)
        tarball = cache / out.stdout.strip().splitlines()[-1]
        with tarfile.open(tarball) as archive:
            member = archive.getmember("package/dist/release/file-format-schema.json")
            data = archive.extractfile(member).read()
        tmp = schema_path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(schema_path)
        tarball.unlink()
    return json.loads(schema_path.read_text())


def read_collapsed(path: Path):
    """[(frames, count)] from a collapsed-stacks file."""
    stacks = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        assert line.strip(), f"{path.name}:{number}: empty line"
        text, _, count = line.rpartition(" ")
        assert text, f"{path.name}:{number}: no frames"
        assert count.isdigit() and int(count) > 0, f"{path.name}:{number}: bad count {count!r}"
        frames = text.split(";")
        assert all(frames), f"{path.name}:{number}: empty frame"
        stacks.append((frames, int(count)))
    return stacks
