"""History, policy, run control and starting runs from the console, against a real daemon."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.client.sync import Client
from console.paths import resolve
from console.tui.screens.dialogs import ConfirmScreen, PromptScreen
from console.tui.screens.history import HistoryScreen
from console.tui.screens.policy import PolicyScreen, RulesTable
from console.tui.screens.run_detail import RunScreen
from console.tui.screens.start_run import StartRunScreen
from tests.conftest import Daemon, needs_bwrap
from tests.tui.conftest import attached, cli, make_app, run_output, run_state, start_run, wait_for
from tests.tui.screen import palette_ready, settled
from widgets.output_log import OutputLog
from widgets.tables import HistoryTable, RunsTable


@needs_bwrap
async def test_history_search_filters_pages_and_export(daemon: Daemon, workspace: Path,
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PILOTHOUSE_SAVE_DIR", str(tmp_path))
    run_id = await start_run(daemon, workspace, "echo marker-quokka", profile="shell")
    with Client(resolve(daemon.home), autostart=False) as c:
        for _ in range(110):  # enough events for a second page
            c.call("config.reload")
    app = make_app(daemon)
    async with app.run_test(size=(120, 40)) as pilot:
        await attached(pilot)
        await run_state(pilot, run_id, "exited")
        await pilot.press("h")
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        table = screen.query_one(HistoryTable)
        await wait_for(pilot, lambda: len(screen.rows) == 100, "a full first page")
        newest = screen.rows[0]["id"]
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: screen.rows and screen.rows[0]["id"] < newest - 99, "the older page")
        assert "page 2" in str(screen.query_one("#history-status").render())
        await pilot.press("left_square_bracket")
        await wait_for(pilot, lambda: screen.rows and screen.rows[0]["id"] == newest, "the newest page again")

        await pilot.press("slash", *"quokka", "enter")
        await wait_for(pilot, lambda: screen.rows and all(r["run_id"] == run_id for r in screen.rows),
                       "the search to find the run")
        assert any(r["kind"] == "run.started" for r in screen.rows)
        assert run_id in [table.cell_text(k, "run") for k in table.shown_keys()]

        # a filter: kind runs, by this run only
        searched = screen.rows
        screen.query_one("#h-search").value = ""
        screen.query_one("#h-kind").value = "run."
        await wait_for(pilot, lambda: screen.rows is not searched and screen.rows  # a page read anew
                       and all(r["kind"].startswith("run.") for r in screen.rows), "only run events",
                       timeout=30)
        shown = len(screen.rows)

        await pilot.press("e")
        prompt = await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen) and app.screen,
                                "the export prompt")
        default = Path(prompt.query_one("#prompt-value").value)
        assert default.parent == tmp_path.resolve() and default.suffix == ".jsonl", default
        out = tmp_path / "pilothouse-export.jsonl"
        prompt.query_one("#prompt-value").value = str(out)
        await pilot.press("enter")
        await wait_for(pilot, out.exists, "the export file")
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(rows) == shown and all(r["kind"].startswith("run.") for r in rows)

        await pilot.press("e")  # a second export asks before replacing the file
        prompt = await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen) and app.screen,
                                "the export prompt")
        prompt.query_one("#prompt-value").value = str(out)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the replace question")
        await pilot.press("n")
        await pilot.press("escape")
        assert not isinstance(app.screen, HistoryScreen)


async def test_policy_rules_and_check_box(daemon: Daemon) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(100, 30)) as pilot:
        await attached(pilot)
        await pilot.press("p")
        screen = app.screen
        assert isinstance(screen, PolicyScreen)
        rules = screen.query_one(RulesTable)
        await wait_for(pilot, lambda: rules.row_count > 5, "the rules of demo")
        texts = [rules.cell_text(k, "rule") for k in rules.keys()]
        assert "pytest" in texts and "pypi.org" in texts
        assert any("embedded defaults:" in rules.cell_text(k, "source") for k in rules.keys())

        result = screen.query_one("#p-result")
        await pilot.press("c", *"pytest -q", "enter")
        await wait_for(pilot, lambda: "ASK" in str(result.render()), "the check result")
        assert 'rule "pytest" (ask)' in str(result.render())
        screen.query_one("#p-mode").value = "host"
        screen.query_one("#p-subject").value = ""
        await pilot.press(*"pypi.org", "enter")  # the box still has the focus
        await wait_for(pilot, lambda: "ALLOW" in str(result.render()), "the host check result")
        assert "pypi.org:443" in str(result.render())


@needs_bwrap
async def test_stop_and_kill_ask_first(daemon: Daemon, workspace: Path) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(120, 40)) as pilot:
        await attached(pilot)
        first = await start_run(daemon, workspace, "echo up; sleep 300")
        second = await start_run(daemon, workspace, "sleep 300")
        table = app.screen.query_one(RunsTable)
        await wait_for(pilot, lambda: first in table and second in table, "both runs in the table")
        table.focus()
        table.select_key(first)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # not confirmed: nothing happens
        await settled(pilot)
        assert app.state.runs[first]["state"] == "running"
        await pilot.press("x")
        await pilot.press("y")
        await run_state(pilot, first, "stopped")
        await wait_for(pilot, lambda: table.cell_text(first, "state").startswith("stopped"),
                       "the table to show it stopped")

        table.select_key(second)
        await pilot.press("enter")
        assert isinstance(app.screen, RunScreen) and app.screen.run_id == second
        await pilot.press("X")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await run_state(pilot, second, "killed")


@needs_bwrap
async def test_run_detail_follow_pause_and_filter(daemon: Daemon, workspace: Path) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(100, 30)) as pilot:
        await attached(pilot)
        run_id = await start_run(daemon, workspace,
                                 "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done; "
                                 "echo apple; echo banana; sleep 300", profile="shell")
        await run_output(pilot, run_id, "banana")
        log = app.screen.query_one(OutputLog)
        assert log.max_lines == 5000 and "line-0" in log.lines
        await pilot.press("space")
        assert not log.following and "PAUSED" in log.status().plain
        await pilot.press("space")
        assert log.following and "FOLLOWING" in log.status().plain
        await pilot.press("slash", *"banana", "enter")
        await wait_for(pilot, lambda: list(log.lines) == ["banana"], "only the matching line")
        await pilot.press("slash")
        await pilot.press("escape")
        await wait_for(pilot, lambda: "apple" in log.lines, "the filter cleared")
        assert isinstance(app.screen, RunScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, RunScreen)
        await cli(daemon, "stop", run_id)


@needs_bwrap
async def test_start_a_run_from_the_key_and_from_the_palette(daemon: Daemon, workspace: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workspace)
    app = make_app(daemon)
    async with app.run_test(size=(100, 30)) as pilot:
        await attached(pilot)
        await pilot.press("s")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, StartRunScreen) and app.screen,
                                "the start dialog")
        dialog.query_one("#s-profile").value = "shell"
        dialog.query_one("#s-workspace").value = str(workspace)
        dialog.query_one("#s-command").focus()
        await pilot.press(*"sh -c 'echo from-the-key'", "enter")
        run = await wait_for(pilot, lambda: next((r for r in app.state.runs.values()
                                                  if "echo from-the-key" in r["command"]), None),
                             "the run started from the dialog")
        assert run["profile"] == "shell" and run["workspace"] == str(workspace)
        await run_output(pilot, run["id"], "from-the-key")
        await pilot.press("escape")

        await pilot.press("colon")
        await pilot.press(*"Start run: shell")
        await palette_ready(pilot, "Start run: shell")
        await pilot.press("enter")
        palette = await wait_for(
            pilot, lambda: next((r for r in app.state.runs.values()
                                 if r["profile"] == "shell" and r["id"] != run["id"]), None),
            "the run started from the palette")
        assert palette["workspace"] == str(workspace)
