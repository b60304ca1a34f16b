"""`trace summary` and the per-agent table of `replay` over rows they cannot believe.

A history row stored before the meter bounded its counts may hold a trillion tokens (or, in a
database someone edited, text where a count belongs); a trace file is anybody's file. Such a
value reads as unknown, as the meter and the export read it: it is not added into the totals,
and it never ends the command with a traceback.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from console.cli.main import main
from console.replay.summary import summarise_trace
from store.writer import StoreWriter
from tests.core.cli_invoke import invoke
from tests.replay.conftest import Through, chat, settle


async def test_an_absurd_stored_count_is_not_added_into_the_totals(
        through: Through, writer: StoreWriter) -> None:
    for n in (5, 7, 9):
        await chat(through, [{"role": "user", "content": f"turn {n}"}], max_tokens=n)
    rows = await settle(writer, 3)
    first, second = sorted(r["id"] for r in rows)[:2]
    conn = sqlite3.connect(writer.db_path)
    with conn:  # as stored before the bound (or edited since)
        conn.execute("UPDATE trace_requests SET prompt_tokens = ?, completion_tokens = ? "
                     "WHERE id = ?", (10**12, 10**15, first))
        conn.execute("UPDATE trace_requests SET cached_tokens = 'many', status = 'odd', "
                     "think_s = 'long' WHERE id = ?", (second,))
    conn.close()
    done = await asyncio.to_thread(invoke, main, ["trace", "summary", "--json"])
    assert done.exit_code == 0, done.output
    (run,) = json.loads(done.output)
    assert run["requests"] == 3
    believed = [r for r in rows if r["id"] != first]
    assert run["tokens_out"] == sum(r["completion_tokens"] for r in believed)
    assert run["tokens_in"] == sum(r["prompt_tokens"] for r in believed)
    assert run["tokens_cached"] == sum(r["cached_tokens"] or 0 for r in believed
                                       if r["id"] != second)
    human = await asyncio.to_thread(invoke, main, ["trace", "summary"])
    assert human.exit_code == 0 and "Traceback" not in human.output


GOOD = {"timestamp": 0, "input_length": 10, "output_length": 5, "hash_ids": [1]}


@pytest.mark.parametrize("odd", [
    {"status": "500"}, {"think_s": "a"}, {"think_s": float("inf")}, {"cached_tokens": "7"},
    {"cached_tokens": 10**20}, {"blocks": 5}, {"blocks": [[1]]}, {"blocks": [["h", "x"]]},
    {"hash_ids": 5}, {"ttft_s": "x", "duration_s": [1]}, {"start": "soon"},
    {"start": 1e308, "duration_s": 1e308},
], ids=repr)
def test_a_trace_file_line_with_odd_values_is_summarised(tmp_path: Path, odd: dict) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "timestamp": 10, **odd})
                    + "\n")
    (lane,) = summarise_trace(path)
    assert lane["requests"] == 2
    assert lane["tokens_in"] == 20 and lane["tokens_out"] == 10
    assert lane["tokens_cached"] in (0, 7)


def test_replay_of_such_a_file_says_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({**GOOD, "status": "500", "think_s": "a"}) + "\n")
    done = invoke(main, ["replay", str(path), "--url", "http://127.0.0.1:9/v1", "--model", "m",
                         "--no-store"])
    assert "Traceback" not in done.output
    assert "per agent" in done.output


def test_a_trace_line_nested_past_the_parser_is_an_error_in_words(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + "[" * 200_000 + "\n")
    done = invoke(main, ["replay", str(path), "--url", "http://127.0.0.1:9/v1", "--model", "m",
                         "--no-store"])
    assert done.exit_code == 1 and "Traceback" not in done.output
    assert "line 2: JSON nested too deep to read" in done.output
    with pytest.raises(ValueError, match="line 2: JSON nested too deep"):
        summarise_trace(path)
