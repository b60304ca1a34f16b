"""Deciding approvals from the console, against a real daemon and real bubblewrap runs."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from console.tui.screens.approval import ApprovalScreen
from console.tui.screens.dialogs import ConfirmScreen, PromptScreen
from console.tui.screens.policy import GrantsTable, PolicyScreen
from tests.conftest import Daemon, needs_bwrap
from tests.tui.conftest import (
    attached,
    cli,
    make_app,
    pending_request,
    run_output,
    run_state,
    start_run,
    wait_for,
)
from tests.tui.screen import dialog_drawn
from widgets.panels import ApprovalBanner, ApprovalCard
from widgets.tables import ApprovalInbox, RunsTable

pytestmark = needs_bwrap


async def test_approve_once_then_the_next_request_then_deny(daemon: Daemon, workspace: Path) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(120, 40)) as pilot:
        await attached(pilot)
        first = await start_run(daemon, workspace)
        req1 = await pending_request(pilot, first)
        second = await start_run(daemon, workspace)
        req2 = await pending_request(pilot, second)

        # Never missed: the banner, the inbox (oldest first), the bell and the notification.
        banner = app.screen.query_one(ApprovalBanner)
        await wait_for(pilot, lambda: "2 pending" in banner.shown, "the banner to count 2")
        assert "pytest -q" in banner.shown and banner.display
        inbox = app.screen.query_one(ApprovalInbox)
        await wait_for(pilot, lambda: inbox.shown_keys() == [req1["id"], req2["id"]], "the inbox rows")
        assert app.screen.query_one("#approvals-panel").border_title == "Approvals (2 pending)"
        assert any(f"run {first} asks: exec pytest -q" in s for s in app.notifier.sent)
        runs = app.screen.query_one(RunsTable)
        await wait_for(pilot, lambda: first in runs and runs.cell_text(first, "asks") == "1",
                       "the runs table to count the request")

        await pilot.press("a")
        assert isinstance(app.screen, ApprovalScreen)
        card = app.screen.query_one(ApprovalCard)
        assert req1["id"] in card.shown and "pytest -q" in card.shown
        assert "/workspace" in card.shown, "the command's cwd is shown"
        assert 'rule "pytest" (ask)' in card.shown, "the rule that made it ask is shown"
        assert "then denied (timeout)" in card.shown

        await pilot.press("y")
        # the next pending request comes up by itself
        await wait_for(pilot, lambda: app.screen.request_id == req2["id"], "the next request")
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ApprovalScreen), "back to the dashboard")
        assert not app.state.approvals

        await run_state(pilot, first, "exited")
        await run_output(pilot, first, "rc=0")
        await pilot.press("escape")
        await run_output(pilot, second, "rc=1")
        assert "denied" in (await cli(daemon, "logs", second))


async def test_run_scope_and_timed_scope(daemon: Daemon, workspace: Path) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(100, 30)) as pilot:
        await attached(pilot)
        twice = "ph-ask exec -- pytest -q && ph-ask exec -- pytest -q; echo rc=$?"
        run_id = await start_run(daemon, workspace, twice)
        await pending_request(pilot, run_id)
        await pilot.press("a", "r")
        await run_output(pilot, run_id, "rc=0")
        hist = json.loads(await cli(daemon, "history", "--run", run_id, "--kind", "approval.requested", "--json"))
        assert len(hist) == 1, "the second ask was answered by the run grant"
        await pilot.press("escape")

        timed = await start_run(daemon, workspace)
        await pending_request(pilot, timed)
        await pilot.press("a", "t")
        assert isinstance(app.screen, PromptScreen)
        assert app.screen.query_one("#prompt-value").value == "10"
        await pilot.press("5", "enter")
        await run_output(pilot, timed, "rc=0")
        decided = json.loads(await cli(daemon, "history", "--run", timed, "--kind", "approval.decided", "--json"))
        grant = decided[0]["data"]["grants"][0]
        assert decided[0]["data"]["scope"] == "timed"
        assert 299 <= grant["expires_at"] - grant["created_at"] <= 301, "5 minutes, as typed"


async def test_profile_scope_shows_the_rule_then_saves_it(daemon: Daemon, workspace: Path) -> None:
    config = daemon.home / "config.toml"
    app = make_app(daemon)
    async with app.run_test(size=(100, 30)) as pilot:
        await attached(pilot)
        # (not pytest: the built-in `ask = ["pytest"]` would override an allow rule, and such a
        # rule is refused, naming that rule; see tests/policy/test_profile_rules.py)
        allowed = await start_run(daemon, workspace, "ph-ask exec -- make lint; echo rc=$?")
        await pending_request(pilot, allowed)
        await pilot.press("a", "p")
        confirm = await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen,
                                 "the rule preview")
        # the text shown above the diff (each rule line a Wrapped: review h174)
        shown = "\n".join(str(getattr(part, "text", part))
                          for part in confirm._body.renderables[:-1])  # noqa: SLF001
        assert "make lint" in shown and str(config) in shown and "exec allow" in shown
        assert not config.exists(), "nothing is saved before the person confirms"
        await dialog_drawn(pilot)  # y typed before the question is drawn decides nothing
        await pilot.press("y")
        await run_output(pilot, allowed, "rc=0")
        assert tomllib.loads(config.read_text())["profiles"]["demo"]["exec"]["allow"] == ["make lint"]
        await pilot.press("escape")

        # N: deny for the profile (its own rule), previewed then confirmed
        denied = await start_run(daemon, workspace, "ph-ask exec -- pip install evil; echo rc=$?")
        await pending_request(pilot, denied)
        await pilot.press("a", "N")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the deny preview")
        await pilot.press("n")  # not confirmed: still pending, nothing saved
        assert isinstance(app.screen, ApprovalScreen) and app.state.pending(denied)
        assert "pip install" not in config.read_text()
        await pilot.press("N")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the deny preview")
        assert "forbid rule" in app.screen._title, "labelled by what it writes"  # noqa: SLF001
        assert '+ demo exec forbid "pip install evil"' in str(app.screen._body.renderables[1].text)  # noqa: SLF001
        await dialog_drawn(pilot)
        await pilot.press("y")
        await run_output(pilot, denied, "rc=1")
        saved = tomllib.loads(config.read_text())["profiles"]["demo"]["exec"]
        assert saved["forbid"] == ["pip install evil"]


async def test_a_request_decided_elsewhere_is_said_and_left(daemon: Daemon, workspace: Path) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(100, 30)) as pilot:
        await attached(pilot)
        run_id = await start_run(daemon, workspace)
        req = await pending_request(pilot, run_id)
        await pilot.press("a")
        assert isinstance(app.screen, ApprovalScreen)
        await cli(daemon, "approve", req["id"])  # another console, or the CLI, wins
        await wait_for(pilot, lambda: not isinstance(app.screen, ApprovalScreen), "the view to close")
        assert not app.state.approvals
        assert not app.screen.query_one(ApprovalBanner).display
        await run_output(pilot, run_id, "rc=0")


async def test_everywhere_asks_first_and_the_grant_can_be_revoked(daemon: Daemon,
                                                                  workspace: Path) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(120, 40)) as pilot:
        await attached(pilot)
        run_id = await start_run(daemon, workspace, "ph-ask exec -- git push; echo rc=$?")
        await pending_request(pilot, run_id)
        await pilot.press("a", "e")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await run_output(pilot, run_id, "rc=0")
        await pilot.press("escape", "p")
        screen = app.screen
        assert isinstance(screen, PolicyScreen)
        table = screen.query_one(GrantsTable)
        await wait_for(pilot, lambda: table.row_count == 1, "the global grant")
        key = table.keys()[0]
        assert table.cell_text(key, "pattern") == "git push" and table.cell_text(key, "for") == "everything"
        table.focus()
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: table.row_count == 0, "the grant to go")
        assert json.loads(await cli(daemon, "grants", "--json")) == []
