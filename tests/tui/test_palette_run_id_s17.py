"""Review s17 round 2 (console): the palette's titles went to Textual's fuzzy highlight, which
reads its string as markup, on the word that a title was "our words with run ids and profile
names (letters, digits, - _ .)". Profile names are checked so; run ids are not: the console
lists ended runs read back from the history (runs.list all), and an edited runs row's id is
whatever the file holds. `[/]` as a run id closed the console with a MarkupError as soon as the
person typed into the palette; `[@click=app.quit]k3mx[/]` read `Open run k3mx`. Titles are
plain text now, as the help is."""

from __future__ import annotations

import pytest
from textual.command import CommandList
from textual.content import Content

from console.tui.app import PilothouseApp
from tests.tui.fixed import RUNS
from tests.tui.screen import app_with, attached, until

pytestmark = pytest.mark.usefixtures("utc")


def palette(app: PilothouseApp) -> str:
    """The palette's hits as a person reads them ("No matches found" when none is)."""
    found = app.screen.query(CommandList)
    if not found:
        return ""
    hits = found.first()
    prompts = (hits.get_option_at_index(i).prompt for i in range(hits.option_count))
    return "\n".join(p.plain if isinstance(p, Content) else "No matches found" for p in prompts)


@pytest.mark.parametrize("run_id", ["[/]", "[@click=app.quit]k3mx[/]"])
async def test_a_run_id_from_an_edited_history_shows_as_written(run_id: str) -> None:
    app = app_with(runs=[{**RUNS[0], "id": run_id, "state": "exited"}])
    async with app.run_test(size=(100, 30)) as pilot:
        await attached(pilot)
        await pilot.press("colon", *"Open run")
        await until(pilot, lambda: f"Open run {run_id}" in palette(app), "the run id in the palette")
        assert app.is_running
