"""Reading the console's screen as text, fed fixed data at a frozen time (for the tests)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from textual.pilot import Pilot

from console.tui.app import PilothouseApp
from tests.tui.fixed import NOW, RUNS, FixedSource

QUOTED = ["sh", "-c", 'ph-ask exec --title "run the test suite" -- rm -rf ./build']
LONG = ["python", "-m", "pytest", "-q", "tests/integration/test_checkout_flow.py",
        "--maxfail=1", "--durations=20", "-k", "not slow and not network"]


def app_with(**data: Any) -> PilothouseApp:
    return PilothouseApp(source=FixedSource(**data), clock=lambda: NOW,  # type: ignore[arg-type]
                         desktop_notify=False)


def screen_text(app: PilothouseApp) -> str:
    """The whole screen as a person reads it (every layer, no colour)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True,
                      color_system=None, legacy_windows=False)
    update = app.screen._compositor.render_update(  # noqa: SLF001 - what the terminal gets
        full=True, screen_stack=app._background_screens)  # noqa: SLF001
    console.print(update)
    return console.export_text()


def line_with(text: str, needle: str) -> str:
    return next((line for line in text.splitlines() if needle in line), "")


async def until(pilot: Pilot[Any], test: Any, what: str, tries: int = 200) -> Any:
    for _ in range(tries):
        value = test()
        if value:
            return value
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen_text(pilot.app)}")


async def attached(pilot: Pilot[Any]) -> PilothouseApp:
    app = pilot.app
    assert isinstance(app, PilothouseApp)
    await until(pilot, lambda: app.state.connected, "the console to attach")
    await pilot.pause(0.1)
    return app


def more_runs() -> list[dict[str, Any]]:
    ended = [{**RUNS[2], "id": f"e{i}aa", "started_at": NOW - 5000 - i, "command": ["true"],
              "state": "exited", "exit_code": 0} for i in range(5)]
    killed = {**RUNS[2], "id": "kl9x", "state": "killed", "exit_code": -9, "command": ["sleep", "300"],
              "started_at": NOW - 3000, "ended_at": NOW - 2900}
    stopped = {**RUNS[2], "id": "st1p", "state": "stopped", "exit_code": 143, "command": LONG,
               "started_at": NOW - 2000, "ended_at": NOW - 1900}
    quoted = {**RUNS[0], "id": "qu0t", "command": QUOTED, "started_at": NOW - 10}
    return [*RUNS, *ended, killed, stopped, quoted]
