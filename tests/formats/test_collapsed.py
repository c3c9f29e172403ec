"""Collapsed ("folded") stacks: `frame;frame;frame count` per line, root first, re-read and summed
against the run's sample count."""

import re

from conftest import read_collapsed

LINE_SUFFIX = re.compile(r":\d+\)$")


def test_counts_sum_to_samples(any_profile):
    stacks = read_collapsed(any_profile["dir"] / "sample.folded")
    assert sum(count for _, count in stacks) == any_profile["samples"]
    # Every stack appears once (the file is already folded).
    joined = [";".join(frames) for frames, _ in stacks]
    assert len(joined) == len(set(joined))


def test_root_first(sample):
    stacks = dict((";".join(f), c) for f, c in read_collapsed(sample["dir"] / "sample.folded"))
    heavy = [s for s in stacks if "heavy_computation" in s and "square" in s]
    assert heavy, stacks.keys()
    frames = heavy[0].split(";")
    assert frames[0].startswith("<module> ")
    assert frames[1].startswith("main ")
    assert frames[-1].startswith("square<int> ")


def test_frames_carry_lines_unless_merged(sample, merged):
    for frames, _ in read_collapsed(sample["dir"] / "sample.folded"):
        assert all(LINE_SUFFIX.search(f) for f in frames), frames
    for frames, _ in read_collapsed(merged["dir"] / "sample.folded"):
        assert not any(LINE_SUFFIX.search(f) for f in frames), frames
    # Merging folds heavy_computation's two lines into one frame.
    merged_frames = {f for frames, _ in read_collapsed(merged["dir"] / "sample.folded")
                     for f in frames}
    assert "heavy_computation (/srv/app/example.py)" in merged_frames


def test_thread_roots(sample):
    stacks = read_collapsed(sample["dir"] / "sample.threads.folded")
    assert sum(count for _, count in stacks) == sample["samples"]
    roots = {frames[0] for frames, _ in stacks}
    assert roots == {"thread MainThread", "thread worker-1"}


def test_deep_stack(deep):
    stacks = read_collapsed(deep["dir"] / "sample.folded")
    assert max(len(frames) for frames, _ in stacks) == 5001
