"""A trace file given to `pilothouse replay` may come from anywhere (review s16, metering): a
value no recording makes is refused with its line, before anything is sent. Before, an
infinite think time slept for ever, a length of 10^12 tokens built the prompt until memory ran
out, and a negative block size made empty blocks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.replay.workload import TraceError, load

GOOD = {"lane": "r1/0", "input_length": 100, "output_length": 10, "hash_ids": [1], "think_s": 1.5}


@pytest.mark.parametrize("field, value, says", [
    ("think_s", float("inf"), "think_s"),
    ("think_s", float("nan"), "think_s"),
    ("think_s", -1.0, "think_s"),
    ("input_length", 10**9, "input_length"),
    ("output_length", 10**9, "output_length"),
    ("block_size", -4, "block_size"),
    ("block_size", 0, "block_size"),
    ("hash_ids", list(range(2_000_001)), "hash_ids"),
])
def test_a_value_no_recording_makes_is_refused_with_its_line(
        tmp_path: Path, field: str, value: object, says: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, field: value}) + "\n")
    with pytest.raises(TraceError, match=f"line 2: {says}"):
        load(path)


def test_a_recorded_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({**GOOD, "block_size": 64}) + "\n" + json.dumps(GOOD) + "\n")
    w = load(path)
    assert w.requests == 2 and w.block_size == 64 and w.lanes[0].requests[0].think_s == 1.5
