"""A wide scope decides more than the request on the screen. `approve ID --scope run` (or a
duration, `global`, `--pattern`) made a grant, and the grant at once answered every other pending
request it covered: those were allowed without anyone seeing them, and `approve` named them only
after the fact ("also answered: ..."). The console's `r` did the same.

Now the daemon says first what a decision would also answer (`approval.covers`, from a trial copy
of the grants: nothing changes), and both `approve` and the console list each of those requests
whole before they ask. The unit cases drive the real Inbox; the rest a real daemon, real
bubblewrap runs, the real CLI on a pty, and the console under Textual's pilot.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from console.daemon.inbox import Inbox
from console.tui.screens.approval import ApprovalScreen
from console.tui.screens.dialogs import ConfirmScreen
from tests.approvals.conftest import WAIT, Recorder
from tests.approvals.terminal import at_a_terminal
from tests.conftest import Daemon, needs_bwrap
from tests.core.test_approvals_e2e import background, wait_pending
from tests.tui.conftest import (
    attached,
    cli,
    make_app,
    pending_request,
    run_output,
    start_run,
    wait_for,
)
from tests.tui.screen import screen_text

HOST = "mirror.pilothouse.invalid:443"
# The second ask is not the first: a person approving the first never saw it.
FIRST, SECOND = "make deploy now", "make deploy --target prod.invalid --force"


async def _three_pending(inbox: Inbox) -> list:
    tasks = [asyncio.create_task(inbox.submit(run, "demo", "network", HOST))
             for run in ("r1", "r1", "r2")]
    while len(inbox.pending()) < 3:
        await asyncio.sleep(0.01)
    return tasks


async def test_covers_lists_what_a_grant_would_answer_and_changes_nothing(
        recorder: Recorder) -> None:
    inbox = Inbox(recorder, timeout_s=WAIT)
    recorder.inbox = inbox
    tasks = await _three_pending(inbox)
    first, same_run, other_run = inbox.pending()
    assert inbox.would_answer(first.id, True, "once") == []
    assert inbox.would_answer(first.id, True, "run") == [(same_run, True)]
    assert inbox.would_answer(first.id, True, "10m") == [(same_run, True)]
    assert inbox.would_answer(first.id, True, "global") == [(same_run, True), (other_run, True)]
    assert inbox.would_answer(first.id, False, "run") == [(same_run, False)]
    assert inbox.grants.list() == [] and len(inbox.pending()) == 3, "asking decided nothing"
    # What it listed is what the decision answers.
    result = await inbox.decide(first.id, True, "alice", "global")
    assert set(result.also_decided) == {same_run.id, other_run.id}
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT)


async def test_covers_refuses_a_bad_scope_and_is_empty_once_decided(recorder: Recorder) -> None:
    inbox = Inbox(recorder, timeout_s=WAIT)
    recorder.inbox = inbox
    tasks = await _three_pending(inbox)
    first = inbox.pending()[0]
    try:
        inbox.would_answer(first.id, True, "forever")
    except Exception as exc:
        assert getattr(exc, "code", None) == "bad-scope", exc
    else:
        raise AssertionError("a bad scope was accepted")
    await inbox.decide(first.id, False, "alice", "once")
    assert inbox.would_answer(first.id, True, "global") == []
    for req in inbox.pending():
        await inbox.decide(req.id, False, "alice", "once")
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT)


def _two_asks(d: Daemon, ws: Path) -> tuple:
    """One bwrap run asks about FIRST, then (both pending at once) about SECOND."""
    t, out = background(d, ws, f"ph-ask exec -- {FIRST} & sleep 1; ph-ask exec -- {SECOND}; "
                               "echo rc2=$?; wait $!; echo rc1=$?")
    rows = wait_pending(d, 2)
    first = next(r for r in rows if r["subject"] == FIRST)
    second = next(r for r in rows if r["subject"] == SECOND)
    return t, out, first, second


@needs_bwrap
def test_approve_lists_every_other_request_its_grant_answers_before_deciding(
        daemon: Daemon, workspace: Path) -> None:
    t, out, first, second = _two_asks(daemon, workspace)
    shown = daemon.cli("approve", first["id"], "--scope", "run", "--pattern", "make deploy").stdout
    listed_at = shown.find("this also allows 1 other pending request")
    assert listed_at >= 0, shown
    assert listed_at < shown.find(SECOND) < shown.find(f"approved {first['id']}"), shown
    assert second["id"] in shown[:shown.find(f"approved {first['id']}")]
    t.join(timeout=60)
    assert "rc1=0" in out["result"].stdout and "rc2=0" in out["result"].stdout


@needs_bwrap
def test_at_a_terminal_the_question_counts_every_request_it_decides(
        daemon: Daemon, workspace: Path) -> None:
    t, out, first, second = _two_asks(daemon, workspace)
    args = ("approve", first["id"], "--scope", "run", "--pattern", "make deploy")
    rc, screen = at_a_terminal(daemon, *args, answer=b"n\n")
    assert rc != 0 and "approve these 2 requests, exactly as shown? [y/N]" in screen, screen
    assert screen.find(SECOND) < screen.find("[y/N]")
    assert len(json.loads(daemon.cli("approvals", "--json").stdout)) == 2, "a no decided nothing"
    # once: nothing else is answered, so nothing else is listed
    rc, screen = at_a_terminal(daemon, "approve", first["id"], answer=b"y\n")
    assert rc == 0 and "this also" not in screen and "approve this request" in screen, screen
    daemon.cli("deny", second["id"])
    t.join(timeout=60)
    assert "rc1=0" in out["result"].stdout and "rc2=1" in out["result"].stdout


@needs_bwrap
async def test_the_console_lists_the_other_requests_before_this_run_decides_them(
        daemon: Daemon, workspace: Path) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(100, 30)) as pilot:
        await attached(pilot)
        twice = "ph-ask exec -- pytest -q & sleep 1; ph-ask exec -- pytest -q; wait; echo rc=$?"
        run_id = await start_run(daemon, workspace, twice)
        await pending_request(pilot, run_id)
        await wait_for(pilot, lambda: len(app.state.approvals) == 2, "both requests pending")
        first, second = list(app.state.approvals)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval screen")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.pause(0.2)
        text = screen_text(app)
        listed = text[text.find("also allows"):]
        assert "also allows" in text and second in listed and "pytest -q" in listed, text
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "back, undecided")
        assert len(json.loads(await cli(daemon, "approvals", "--json"))) == 2
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question again")
        await pilot.press("y")
        await run_output(pilot, run_id, "rc=0")
        assert first not in app.state.approvals and second not in app.state.approvals
