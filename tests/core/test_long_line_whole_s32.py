"""A line of a run's output longer than the pump's bound loses none of its bytes.

Found in s31's leftovers: output_pump cut a line at MAX_LINE_BYTES (16 KiB) and dropped the
rest, up to the next newline: a 100 KB line of an agent's output (a minified file, a JSON
answer) came back as its first 16 KiB, live, in `logs` and in the store, with nothing saying
so. Now the rest goes on as the next lines, each at most MAX_LINE_BYTES and cut where a
character starts, so every byte reaches the store in order.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from console.daemon.output_pump import MAX_LINE_BYTES, pump_output
from tests.conftest import Daemon, needs_bwrap

# Three-, two- and four-byte characters land on every offset of the bound in turn.
LONG = ("é€😀" + "x" * 5) * 9000  # 126,000 bytes as UTF-8


def _pumped(data: bytes, chunk: int) -> list[str]:
    async def main() -> list[str]:
        reader = asyncio.StreamReader()
        got: list[str] = []

        async def feed() -> None:
            for i in range(0, len(data), chunk):
                reader.feed_data(data[i:i + chunk])
                await asyncio.sleep(0)
            reader.feed_eof()

        await asyncio.gather(pump_output(reader, got.extend), feed())
        return got

    return asyncio.run(main())


@pytest.mark.parametrize("chunk", [1000, 65536, 200_000], ids=["small reads", "pipe reads",
                                                               "one read"])
def test_a_long_line_comes_out_whole_in_bounded_pieces(chunk: int) -> None:
    data = ("first\n" + LONG + "\r\nmiddle\n" + LONG + LONG[:100]).encode()  # the last: no newline
    lines = _pumped(data, chunk)
    assert lines[0] == "first"
    assert all(len(line.encode()) <= MAX_LINE_BYTES for line in lines)
    assert "\ufffd" not in "".join(lines)  # no character was cut in two
    middle = lines.index("middle")
    assert "".join(lines[1:middle]) == LONG and middle > 2
    assert "".join(lines[middle + 1:]) == LONG + LONG[:100]


def test_bytes_that_are_not_utf8_are_cut_at_the_bound() -> None:
    data = b"\x80" * (MAX_LINE_BYTES * 2 + 5) + b"\n"
    lines = _pumped(data, 65536)
    assert [len(line) for line in lines] == [MAX_LINE_BYTES, MAX_LINE_BYTES, 5]


@needs_bwrap
def test_a_runs_long_line_is_stored_whole(daemon: Daemon, workspace: Path) -> None:
    (workspace / "long.txt").write_text(LONG + "\nafter\n")
    done = daemon.cli("run", "demo", "-w", str(workspace), "--wait", "--", "cat", "long.txt",
                      check=False, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    live = done.stdout.splitlines()
    after = live.index("after")
    assert "".join(live[:after]).endswith(LONG) and LONG in "".join(live[:after]), len(live)
    run_id = daemon.cli("ps", "-a", "--json").stdout.split('"id": "')[1].split('"')[0]
    replayed = daemon.cli("logs", run_id, check=False, timeout=60).stdout.splitlines()
    assert "".join(replayed[:replayed.index("after")]).endswith(LONG)
