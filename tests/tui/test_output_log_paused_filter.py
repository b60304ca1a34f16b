"""Review of the output log's catch-up (2026-12-01): no line lost, doubled or reordered when
the filter changes, or output resets, while paused or catching up."""

from __future__ import annotations

import pytest

from tests.tui.screen import until
from widgets.output_log import CATCH_UP_LINES, OutputLog

pytestmark = pytest.mark.usefixtures("utc")

SIZE = (120, 30)


def _app():  # type: ignore[no-untyped-def]
    from textual.app import App, ComposeResult

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield OutputLog(max_lines=10_000)

    return One()


async def test_a_filter_changed_while_paused_does_not_double_the_held_lines() -> None:
    """Paused (n/N, or scrolled up), lines arrive, the filter changes (the whole buffer is
    drawn again, held lines included), then End: each line must be shown once."""
    async with _app().run_test(size=SIZE) as pilot:
        log = pilot.app.query_one(OutputLog)
        log.append([f"line {i}" for i in range(10)])
        log.set_following(False)
        log.append([f"line {i}" for i in range(10, 20)])
        log.set_filter("line")
        log.set_following(True)
        await until(pilot, lambda: not log.catching_up, "the held lines to be written")
        assert list(log.lines) == [f"line {i}" for i in range(20)]


async def test_a_filter_changed_while_catching_up_then_paused_keeps_each_line_once() -> None:
    async with _app().run_test(size=SIZE) as pilot:
        log = pilot.app.query_one(OutputLog)
        log.set_following(False)
        log.append([f"line {i}" for i in range(3 * CATCH_UP_LINES)])
        log.set_following(True)  # one chunk written, the rest catching up
        log.set_following(False)  # the rest held again
        log.set_filter("line")  # everything drawn again
        log.set_following(True)
        await until(pilot, lambda: not log.catching_up, "the held lines to be written")
        assert list(log.lines) == [f"line {i}" for i in range(3 * CATCH_UP_LINES)]


async def test_more_held_than_the_buffer_keeps_is_shown_as_dropped_on_resume() -> None:
    """Paused, more lines come than the log keeps: on resume the ones pushed out are one
    ⟨N lines dropped⟩ line before the rest, and counted, never lost without a word."""
    from textual.app import App, ComposeResult

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield OutputLog(max_lines=1000)

    async with One().run_test(size=(100, 30)) as pilot:
        log = pilot.app.query_one(OutputLog)
        log.append([f"before {i}" for i in range(10)])
        log.set_following(False)
        log.append([f"held {i}" for i in range(2500)])
        log.set_following(True)
        await until(pilot, lambda: not log.catching_up, "the held lines to be written")
        shown = list(log.lines)
        marker = shown.index("⟨1,501 lines dropped⟩")  # the marker holds the 1,501st's place
        assert shown[marker + 1:] == [f"held {i}" for i in range(1501, 2500)]
        assert log.dropped == 1501 and log.total == 2510
