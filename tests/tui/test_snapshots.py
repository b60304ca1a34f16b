"""SVG snapshots of every screen at 80x24, 120x40 and 200x50, fed fixed data at a frozen time.

Update after an intended change with: .venv/bin/pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest
from textual.pilot import Pilot

from console.tui.app import PilothouseApp
from console.tui.link import Disconnected
from tests.tui.fixed import NOW, FixedSource

pytestmark = pytest.mark.usefixtures("utc")  # fixed times render the same everywhere

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40"),
         pytest.param((200, 50), id="200x50")]


def make_app(**data: object) -> PilothouseApp:
    return PilothouseApp(source=FixedSource(**data), clock=lambda: NOW,  # type: ignore[arg-type]
                         desktop_notify=False)


async def attached(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, PilothouseApp)
    for _ in range(100):
        if app.state.connected and len(app.state.net) == len(app.source.net):  # type: ignore[attr-defined]
            break
        await pilot.pause(0.02)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_with_runs_and_pending_approvals(snap_compare, size) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=attached)


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_empty(snap_compare, size) -> None:
    assert snap_compare(make_app(runs=[], approvals=[], net=[]), terminal_size=size,
                        run_before=attached)


@pytest.mark.parametrize("size", SIZES)
def test_approval_view(snap_compare, size) -> None:
    async def open_oldest(pilot: Pilot[None]) -> None:
        await attached(pilot)
        await pilot.press("a")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=open_oldest)


@pytest.mark.parametrize("size", SIZES)
def test_approval_view_network_request(snap_compare, size) -> None:
    async def open_second(pilot: Pilot[None]) -> None:
        await attached(pilot)
        await pilot.press("a", "j")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=open_second)


@pytest.mark.parametrize("size", SIZES)
def test_history(snap_compare, size) -> None:
    async def open_history(pilot: Pilot[None]) -> None:
        await attached(pilot)
        await pilot.press("h")
        for _ in range(100):
            if getattr(pilot.app.screen, "rows", None):
                break
            await pilot.pause(0.02)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=open_history)


@pytest.mark.parametrize("size", SIZES)
def test_history_empty(snap_compare, size) -> None:
    async def search_nothing(pilot: Pilot[None]) -> None:
        await attached(pilot)
        await pilot.press("h")
        await pilot.pause(0.1)
        await pilot.press("slash", *"zzz-nothing", "enter")
        app = pilot.app
        empty = app.screen.query_one("#history-empty")

        def shown() -> bool:  # the search's page is in (none match) and said so
            return empty.display and any(op == "history" and a.get("search") == "zzz-nothing"
                                         for op, a in app.source.calls)  # type: ignore[attr-defined]

        for _ in range(500):
            if shown():
                break
            await pilot.pause(0.02)
        await pilot.pause()

    app = make_app()
    assert snap_compare(app, terminal_size=size, run_before=search_nothing)


@pytest.mark.parametrize("size", SIZES)
def test_run_detail(snap_compare, size) -> None:
    async def open_run(pilot: Pilot[None]) -> None:
        await attached(pilot)
        await pilot.press("enter")
        for _ in range(100):
            if "40 line" in str(pilot.app.screen.query_one("#log-status").render()):
                break
            await pilot.pause(0.02)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=open_run)


@pytest.mark.parametrize("size", SIZES)
def test_policy(snap_compare, size) -> None:
    async def open_policy(pilot: Pilot[None]) -> None:
        await attached(pilot)
        await pilot.press("p")
        await pilot.pause(0.2)
        await pilot.press("c", *"pytest -q", "enter")
        await pilot.pause(0.2)

    assert snap_compare(make_app(), terminal_size=size, run_before=open_policy)


@pytest.mark.parametrize("size", SIZES)
def test_start_dialog(snap_compare, size) -> None:
    async def open_dialog(pilot: Pilot[None]) -> None:
        await attached(pilot)
        await pilot.press("s")
        await pilot.pause(0.2)

    assert snap_compare(make_app(), terminal_size=size, run_before=open_dialog)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, size) -> None:
    async def open_help(pilot: Pilot[None]) -> None:
        await attached(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(make_app(), terminal_size=size, run_before=open_help)


def test_daemon_away(snap_compare) -> None:
    """The daemon stopped: runs say unknown, the status line keeps the fix in view."""
    async def stop_daemon(pilot: Pilot[None]) -> None:
        await attached(pilot)
        pilot.app.post_message(Disconnected("the Pilothouse daemon is not running", 4.0, 5,
                                            "start it with: pilothouse daemon (or run any command)"))
        await pilot.pause(0.2)

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=stop_daemon)


def test_dashboard_without_colour(snap_compare, monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_COLOR: states, decisions and UNSANDBOXED still read as words."""
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=attached)
