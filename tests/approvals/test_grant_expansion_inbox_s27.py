"""The s27 review's grant finding through the real Inbox and the decision agent.sock uses
(make_policy_eval): a person approves `rm -f './*'` for the run, and the agent's `rm -f ./*`
(every file in the folder) was then allowed by that grant, never shown. It is asked now; and
approving a command that expands (`rm -rf ~`) for the run makes no grant and says so."""

from __future__ import annotations

import asyncio

from console.daemon.inbox import Inbox
from console.policy import ExecRules, make_policy_eval
from tests.approvals.conftest import WAIT, Recorder


async def _approve_for_the_run(inbox: Inbox, command: str):  # type: ignore[no-untyped-def]
    """As agent.sock asks: the parts the rules asked about are what a grant may hold."""
    asked = make_policy_eval(lambda _profile: ExecRules(default="ask"), inbox.grants)(
        "exec", command, "r1", "demo")
    task = asyncio.create_task(inbox.submit("r1", "demo", "exec", command,
                                            grant_patterns=asked.asking or None))
    while not inbox.pending():
        await asyncio.sleep(0.01)
    result = await inbox.decide(inbox.pending()[0].id, True, "alice", "run")
    await asyncio.wait_for(task, WAIT)
    return result


async def test_a_run_grant_of_a_quoted_glob_does_not_allow_the_glob(recorder: Recorder) -> None:
    inbox = Inbox(recorder, timeout_s=WAIT)
    recorder.inbox = inbox
    decided = await _approve_for_the_run(inbox, "rm -f './*'")
    assert len(decided.grants) == 1
    decide = make_policy_eval(lambda _profile: ExecRules(default="ask"), inbox.grants)
    assert decide("exec", "rm -f './*'", "r1", "demo").action == "allow"  # what was approved
    for other in ("rm -f ./*", "rm -f \"./\"*", "rm -f ./[a-z]*"):
        assert decide("exec", other, "r1", "demo").action == "ask", other


async def test_approving_an_expanding_command_for_the_run_makes_no_grant(
        recorder: Recorder) -> None:
    inbox = Inbox(recorder, timeout_s=WAIT)
    recorder.inbox = inbox
    decided = await _approve_for_the_run(inbox, "chmod -R 777 ~")
    assert decided.grants == () and "made no grant" in decided.note, decided
    assert inbox.grants.list() == []
    decide = make_policy_eval(lambda _profile: ExecRules(default="ask"), inbox.grants)
    assert decide("exec", "chmod -R 777 '~'", "r1", "demo").action == "ask"
