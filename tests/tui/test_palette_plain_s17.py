"""The command palette (`:`) shows the oldest request's command and each run's command as
help text under "Allow oldest approval once" and "Open run". Textual reads a hit's help (and a
plain-string title) as markup: an agent's `[/]` closed the console with a MarkupError as the
palette opened, and `rm -rf [red]./build[/red] /` read `rm -rf ./build /` right above the
command that allows it. Each is plain text now."""

from __future__ import annotations

import pytest
from textual.command import CommandList

from console.tui.app import PilothouseApp
from tests.tui.fixed import APPROVALS, RUNS
from tests.tui.screen import app_with, attached, until

pytestmark = pytest.mark.usefixtures("utc")

ODD = ["echo [/] done", "rm -rf [red]./build[/red] /", "cat [@click=app.quit]x[/]"]


def palette(app: PilothouseApp) -> str:
    """The palette's hits as a person reads them (titles and help, no style)."""
    found = app.screen.query(CommandList)
    if not found:
        return ""
    hits = found.first()
    return "\n".join(hits.get_option_at_index(i).prompt.plain  # type: ignore[union-attr]
                     for i in range(hits.option_count))


@pytest.mark.parametrize("subject", ODD)
async def test_the_palette_shows_the_oldest_request_as_written(subject: str) -> None:
    asking = [{**APPROVALS[0], "id": "mk01", "subject": subject, "title": subject,
               "summary": f"exec {subject}"}]
    app = app_with(approvals=asking)
    async with app.run_test(size=(100, 30)) as pilot:
        await attached(pilot)
        await pilot.press("colon", *"Allow oldest")
        await until(pilot, lambda: subject in palette(app), "the command in the palette")
        assert app.is_running


@pytest.mark.parametrize("word", ODD)
async def test_the_palette_shows_a_runs_command_as_written(word: str) -> None:
    runs = [{**RUNS[0], "command": ["sh", "-c", word]}]
    app = app_with(runs=runs)
    async with app.run_test(size=(100, 30)) as pilot:
        await attached(pilot)
        await pilot.press("colon", *"Open run k3mx")
        await until(pilot, lambda: word in palette(app), "the run's command in the palette")
        assert app.is_running
