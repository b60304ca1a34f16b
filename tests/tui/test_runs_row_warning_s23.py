"""The console marks a run whose stored row its recorded events contradict, as `ps --all` does.

`runs.list` gives each ended row a `warning` (store/integrity.py, the check `report` and
`audit verify` make): an edited exit code or state must not read as the truth on the dashboard
or the run's screen. The warning's text comes from the file (a run id in it), so it is shown
as printable text only."""

from __future__ import annotations

import pytest

from tests.tui.fixed import RUNS
from tests.tui.screen import app_with, attached, line_with, screen_text, until

pytestmark = pytest.mark.usefixtures("utc")

WARNING = ("run z2bc: the runs row says exited (exit 0), its recorded end says failed (exit 2)"
           "\x1b[2J")


def _runs_with_warning() -> list[dict[str, object]]:
    return [{**r, "warning": WARNING} if r["id"] == "z2bc" else {**r, "warning": None}
            for r in RUNS]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_dashboard_marks_the_row_its_events_contradict(size: tuple[int, int]) -> None:
    app = app_with(runs=_runs_with_warning(), approvals=[])
    async with app.run_test(size=size) as pilot:
        await attached(pilot)
        text = await until(pilot, lambda: "z2bc" in screen_text(app) and screen_text(app),
                           "the ended run on the dashboard")
        assert "(!)" in line_with(text, "z2bc"), text
        assert "(!)" not in line_with(text, "k3mx"), text


async def test_run_screen_says_why_the_row_is_not_the_record() -> None:
    app = app_with(runs=_runs_with_warning(), approvals=[])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        app.open_run("z2bc")
        text = await until(pilot, lambda: "recorded end says" in screen_text(app)
                           and screen_text(app), "the warning on the run's screen")
        assert "(!)" in text and "\x1b" not in text, text
