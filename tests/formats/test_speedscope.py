"""speedscope JSON, validated against speedscope's published file format schema."""

import json

import jsonschema


def test_valid_against_published_schema(any_profile, speedscope_schema):
    document = json.loads((any_profile["dir"] / "sample.speedscope.json").read_text())
    jsonschema.validate(document, speedscope_schema)


def test_one_sampled_profile_per_thread(sample):
    document = json.loads((sample["dir"] / "sample.speedscope.json").read_text())
    assert document["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    profiles = document["profiles"]
    assert len(profiles) == sample["threads"]
    frames = document["shared"]["frames"]
    total = 0.0
    for profile in profiles:
        assert profile["type"] == "sampled"
        assert profile["unit"] == "seconds"
        assert len(profile["samples"]) == len(profile["weights"])
        for stack in profile["samples"]:
            assert all(0 <= index < len(frames) for index in stack)
        weights = sum(profile["weights"])
        assert abs(profile["endValue"] - profile["startValue"] - weights) < 1e-6
        total += weights
    assert abs(total - sample["seconds"]) < 1e-6
    assert all("file" in f and "line" in f for f in frames)
