"""Helpers for driving the console against a real daemon (the `daemon` fixture)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from console.paths import resolve
from console.tui.app import PilothouseApp
from tests.conftest import Daemon
from widgets.output_log import OutputLog

ASK_SCRIPT = "ph-ask exec -- pytest -q; echo rc=$?"


def make_app(daemon: Daemon, **kwargs: Any) -> PilothouseApp:
    return PilothouseApp(resolve(daemon.home), desktop_notify=True, **kwargs)


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], Any], what: str,
                   timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


async def cli(daemon: Daemon, *args: str, check: bool = True) -> str:
    """The CLI in a thread, so the app's loop keeps running meanwhile."""
    result = await asyncio.to_thread(daemon.cli, *args, check=check)
    return result.stdout.strip()


async def start_run(daemon: Daemon, workspace: Path, script: str = ASK_SCRIPT,
                    profile: str = "demo") -> str:
    return await cli(daemon, "run", profile, "-w", str(workspace), "--", "sh", "-c", script)


async def attached(pilot: Pilot[Any]) -> PilothouseApp:
    app = pilot.app
    assert isinstance(app, PilothouseApp)
    await wait_for(pilot, lambda: app.state.connected, "the console to attach")
    return app


async def pending_request(pilot: Pilot[Any], run_id: str) -> dict[str, Any]:
    app = pilot.app
    assert isinstance(app, PilothouseApp)
    return await wait_for(
        pilot, lambda: next((r for r in app.state.approvals.values() if r["run_id"] == run_id), None),
        f"an approval request from run {run_id}")


def output_text(app: PilothouseApp) -> str:
    return "\n".join(app.screen.query_one(OutputLog).lines)


async def run_output(pilot: Pilot[Any], run_id: str, needle: str) -> str:
    """Open the run's screen and wait until its output shows `needle`."""
    app = pilot.app
    assert isinstance(app, PilothouseApp)
    app.open_run(run_id)
    await pilot.pause()
    return await wait_for(pilot, lambda: needle in output_text(app) and output_text(app),
                          f"{needle!r} in the output of {run_id}")


async def run_state(pilot: Pilot[Any], run_id: str, *states: str) -> dict[str, Any]:
    app = pilot.app
    assert isinstance(app, PilothouseApp)
    return await wait_for(
        pilot, lambda: (r := app.state.runs.get(run_id)) and r.get("state") in states and r,
        f"run {run_id} to be {' or '.join(states)}")


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Clock text in UTC, so snapshots of fixed times read the same on every machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
