"""The run screen under an output flood (issue 17, point 5): bounded buffers from the output
worker to the Log, drops shown with their exact count, keys still served. No timings here (the
speed is bench/tui.py's): a source hands the worker far more lines than the bound, as fast as
the loop takes them, and the tests read what a person sees."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from console.tui.screens.run_detail import RunScreen
from console.tui.spool import OutputSpool
from tests.tui.fixed import NOW, FixedSource
from tests.tui.screen import attached, screen_text, until
from widgets.output_log import OutputLog

pytestmark = pytest.mark.usefixtures("utc")

SIZE = (120, 30)


class FloodSource(FixedSource):
    """`logs`: `batches` run.output events of `size` lines each, numbered as the daemon numbers
    them; `skip` lines after each batch never come (the daemon's bus dropped them for a slow
    reader: the next batch's number jumps). No await between batches, so the worker gets them
    all before the screen draws once; `endless` floods on, yielding to the loop between batches."""

    def __init__(self, *, batches: int = 0, size: int = 2000, skip: int = 0,
                 endless: bool = False) -> None:
        super().__init__()
        self.batches, self.size, self.skip, self.endless = batches, size, skip, endless
        self.produced = 0  # lines of the run up to the end of the last batch sent

    async def stream(self, op: str, **args: Any) -> AsyncIterator[dict[str, Any]]:
        if op != "logs":
            async for event in super().stream(op, **args):
                yield event
            return
        first, sent = 0, 0
        while self.endless or sent < self.batches:
            yield {"kind": "run.output", "run_id": args.get("run"), "first": first,
                   "lines": [f"flood {first + k} the quick brown fox" for k in range(self.size)]}
            self.produced = first + self.size
            first += self.size + self.skip
            sent += 1
            if self.endless:
                await asyncio.sleep(0)
        await asyncio.Event().wait()  # a live run: more output would follow


def flooded_app(source: FloodSource) -> Any:
    from console.tui.app import PilothouseApp

    return PilothouseApp(source=source, clock=lambda: NOW, desktop_notify=False)  # type: ignore[arg-type]


async def open_run(pilot: Any) -> OutputLog:
    app = await attached(pilot)
    app.open_run("k3mx")
    return await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.is_mounted
                       and app.screen.query(OutputLog) and app.screen.query_one(OutputLog),
                       "the run screen")


def shown_drops(log: OutputLog) -> list[int]:
    """The counts in the ⟨N lines dropped⟩ lines the Log shows."""
    return [int(m.group(1).replace(",", "")) for line in log.lines
            if (m := re.fullmatch(r"⟨([\d,]+) lines dropped⟩", line))]


async def test_a_flood_far_larger_than_the_bound_stays_within_it() -> None:
    source = FloodSource(batches=100, size=2000)  # 200,000 lines at once, 50x the spool
    app = flooded_app(source)
    async with app.run_test(size=SIZE) as pilot:
        log = await open_run(pilot)
        await until(pilot, lambda: log.total == 200_000, "the flood to be counted")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        spool = screen.spool
        assert spool.peak <= spool.bound < log.max_lines  # type: ignore[operator]
        # One message in flight at most, however many batches came: the queue never grows.
        assert spool.wakes <= spool.takes + 1, (spool.wakes, spool.takes)
        assert log.line_count <= log.max_lines  # type: ignore[operator]
        # What is kept is the newest, in order, after the marker for the rest.
        kept = [line for line in log.lines if line.startswith("flood ")]
        assert kept[-1] == "flood 199999 the quick brown fox"
        assert kept[0] == f"flood {200_000 - len(kept)} the quick brown fox"


async def test_the_dropped_count_shown_is_lines_sent_minus_lines_kept() -> None:
    # 100 batches of 2,000 with 500 lines the daemon skipped after each: both kinds of drop.
    source = FloodSource(batches=100, size=2000, skip=500)
    app = flooded_app(source)
    async with app.run_test(size=SIZE) as pilot:
        log = await open_run(pilot)
        sent = 99 * 2500 + 2000  # the run's lines up to the end of the last batch
        await until(pilot, lambda: log.total == sent, "the flood to be counted")
        await pilot.pause(0.2)
        kept = sum(1 for line in log.lines if line.startswith("flood "))
        assert log.line_count < log.max_lines  # type: ignore[operator]  # nothing scrolled out
        assert sum(shown_drops(log)) == sent - kept == log.dropped
        text = screen_text(app)
        assert f"{sent:,} line(s) received, {sent - kept:,} dropped" in text, text
        assert f"⟨{sent - kept:,} lines dropped⟩" in text or kept >= SIZE[1], text


async def test_keys_still_work_while_flooded() -> None:
    source = FloodSource(size=2000, endless=True)
    app = flooded_app(source)
    async with app.run_test(size=SIZE) as pilot:
        log = await open_run(pilot)
        await until(pilot, lambda: log.total > 50_000, "the flood")
        await pilot.press("space")
        await until(pilot, lambda: "PAUSED" in screen_text(app), "PAUSED after space")
        await pilot.press("space")
        await until(pilot, lambda: "FOLLOWING" in screen_text(app), "FOLLOWING after space")
        await pilot.press("slash", *"fox", "enter")
        await until(pilot, lambda: "filter fox" in screen_text(app), "the filter")
        await pilot.press("escape")
        await until(pilot, lambda: "filter fox" not in screen_text(app), "the filter cleared")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        spool = screen.spool
        assert spool.peak <= spool.bound and spool.wakes <= spool.takes + 1
        assert log.line_count <= log.max_lines  # type: ignore[operator]
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, RunScreen), "back to the dashboard")


def test_the_spool_counts_its_own_drops_and_the_daemons_gaps_exactly() -> None:
    spool = OutputSpool(bound=3)
    assert spool.put(["a", "b"], first=0)  # the first batch wakes the screen
    assert not spool.put(["c", "d"], first=2)  # one message in flight: no second one
    assert not spool.put(["h"], first=7)  # lines 4..6 never came (the daemon skipped them)
    assert not spool.put(["[pilothouse] a note"])  # no number: not part of the count's base
    lines, dropped = spool.take()
    assert lines == ["d", "h", "[pilothouse] a note"]
    assert dropped == 3 + 3 == spool.dropped  # a, b, c pushed out; lines 4..6 skipped
    assert spool.total == 2 + 2 + 3 + 1 + 1
    assert spool.put(["i"], first=8) and spool.take() == (["i"], 0)
    assert spool.peak == spool.bound and spool.wakes == spool.takes == 2


def test_the_console_paints_at_120_frames_a_second_unless_told() -> None:
    # Textual reads TEXTUAL_FPS once, when imported: the console's package must set it first,
    # on the way the program takes (the CLI, then the app).
    probe = "import console.cli.main, console.tui.app, textual.constants as c; print(c.MAX_FPS)"
    env = {k: v for k, v in os.environ.items() if k != "TEXTUAL_FPS"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "120"
    told = subprocess.run([sys.executable, "-c", probe], env={**env, "TEXTUAL_FPS": "30"},
                          capture_output=True, text=True, check=True).stdout
    assert told.strip() == "30"


async def test_resuming_writes_the_held_lines_a_frame_at_a_time_in_order() -> None:
    """Thousands of lines held while paused are written a chunk per frame after the resume,
    so the key's own answer is not held back; lines that come meanwhile go after them."""
    from textual.app import App, ComposeResult

    from widgets.output_log import CATCH_UP_LINES

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield OutputLog(max_lines=10_000)

    async with One().run_test(size=SIZE) as pilot:
        log = pilot.app.query_one(OutputLog)
        log.append([f"line {i}" for i in range(100)])
        log.set_following(False)
        log.append([f"line {i}" for i in range(100, 6100)])
        assert log.line_count == 100 and log.unseen == 6000
        log.set_following(True)
        assert log.line_count <= 100 + CATCH_UP_LINES  # not all 6,000 in the key's own frame
        log.append(["after the resume"])
        await until(pilot, lambda: not log.catching_up, "the held lines to be written")
        assert list(log.lines) == [*(f"line {i}" for i in range(6100)), "after the resume"]
        # Paused again half way: what was not written yet is held again, and comes on resume.
        log.set_following(False)
        log.append([f"more {i}" for i in range(3000)])
        log.set_following(True)
        log.set_following(False)
        assert log.unseen >= 3000 - CATCH_UP_LINES
        log.set_following(True)
        await until(pilot, lambda: not log.catching_up, "the held lines to be written")
        assert list(log.lines)[-3001:] == ["after the resume", *(f"more {i}" for i in range(3000))]


async def test_the_console_process_freezes_its_startup_objects_once_ready() -> None:
    """A full collection of the started console walked ~90k objects (about 60 ms, a key's
    answer held behind it); the console's own process moves them out of the collector's
    sight once the first frame is up. Apps made without asking (the tests') do not."""
    import gc

    from console.tui.app import PilothouseApp

    before = gc.get_freeze_count()
    try:
        app = PilothouseApp(source=FloodSource(), clock=lambda: NOW, desktop_notify=False,
                            freeze_startup=True)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: gc.get_freeze_count() > before, "the startup freeze")
            assert gc.get_freeze_count() > 10_000
        plain = flooded_app(FloodSource())
        frozen = gc.get_freeze_count()
        async with plain.run_test(size=SIZE) as pilot:
            await pilot.pause(0.2)
            assert gc.get_freeze_count() <= frozen  # frozen ones may still be freed; none added
    finally:
        gc.unfreeze()
