"""pprof: gzip-compressed perftools.profiles.Profile, decoded by protoc against profile.proto (and
read by `go tool pprof` where Go is installed)."""

import gzip
import re
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def decode(path: Path) -> str:
    protoc = shutil.which("protoc")
    if protoc is None:
        pytest.fail("protoc is needed (Debian's protobuf-compiler: scripts/install-deps.sh test)")
    raw = gzip.decompress(path.read_bytes())
    result = subprocess.run([protoc, f"--proto_path={HERE}", "--decode",
                             "perftools.profiles.Profile", "profile.proto"],
                            input=raw, capture_output=True, check=True, timeout=60)
    return result.stdout.decode()


def test_gzip_header(sample):
    assert (sample["dir"] / "sample.pb.gz").read_bytes()[:2] == b"\x1f\x8b"


def test_decodes_and_adds_up(any_profile):
    text = decode(any_profile["dir"] / "sample.pb.gz")
    strings = re.findall(r'^string_table: "(.*)"$', text, re.M)
    assert strings and strings[0] == ""
    samples = re.findall(r"^sample \{\n(.*?)^\}", text, re.M | re.S)
    assert samples
    counts = 0
    nanos = 0
    used_locations = set()
    for body in samples:
        values = [int(v) for v in re.findall(r"^  value: (\d+)$", body, re.M)]
        assert len(values) == 2, body
        counts += values[0]
        nanos += values[1]
        used_locations.update(int(v) for v in re.findall(r"^  location_id: (\d+)$", body, re.M))
    assert counts == any_profile["samples"]
    assert abs(nanos - any_profile["seconds"] * 1e9) < 1e3 * len(samples)
    locations = {int(v) for v in re.findall(r"^location \{\n  id: (\d+)$", text, re.M)}
    assert used_locations <= locations
    functions = {int(v) for v in re.findall(r"^function \{\n  id: (\d+)$", text, re.M)}
    for function_id in re.findall(r"^    function_id: (\d+)$", text, re.M):
        assert int(function_id) in functions
    assert re.search(r"^period: 1000000$", text, re.M)
    # The sample types are ("samples", "count") and ("wall", "nanoseconds").
    for index in re.findall(r"^  (?:type|unit): (\d+)$", text, re.M):
        assert strings[int(index)] in {"samples", "count", "wall", "cpu", "nanoseconds"}


def test_go_pprof_reads_it(sample):
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed: protoc's decoding above is the check")
    result = subprocess.run([go, "tool", "pprof", "-top", "-sample_index=wall",
                             str(sample["dir"] / "sample.pb.gz")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "network_request" in result.stdout
    assert "Worker.process" in result.stdout
