"""The command palette (`:`) shows the oldest request's command and each run's command as
help text under "Allow oldest approval once" and "Open run". Textual reads a hit's help (and a
plain-string title) as markup: an agent's `[/]` closed the console with a MarkupError as the
palette opened, and `rm -rf [red]./build[/red] /` read `rm -rf ./build /` right above the
command that allows it. Each is plain text now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


def asking(word: str) -> dict[str, Any]:
    """The oldest request's command is `word`, under "Allow oldest approval once"."""
    return {"approvals": [{**APPROVALS[0], "id": "mk01", "subject": word, "title": word,
                           "summary": f"exec {word}"}]}


def running(word: str) -> dict[str, Any]:
    """A run's command line holds `word`, under "Open run k3mx"."""
    return {"runs": [{**RUNS[0], "command": ["sh", "-c", word]}]}


@pytest.mark.parametrize("word", ODD)
@pytest.mark.parametrize(("data", "typed"), [(asking, "Allow oldest"), (running, "Open run k3mx")],
                         ids=["oldest request", "run command"])
async def test_the_palette_shows_an_agents_words_as_written(
        word: str, data: Callable[[str], dict[str, Any]], typed: str) -> None:
    app = app_with(**data(word))
    async with app.run_test(size=(100, 30)) as pilot:
        await attached(pilot)
        await pilot.press("colon", *typed)
        await until(pilot, lambda: word in palette(app), "the words in the palette")
        assert app.is_running
