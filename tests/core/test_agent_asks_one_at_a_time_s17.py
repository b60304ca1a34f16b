"""Review s17 round 2 (daemon): an agent's exec asks are decided off the loop "one at a time per
run" on a copy of the grants, and a "once" grant is revoked after the decision. The per-run lock
was dropped from its dict whenever its holder finished while the next ask still waited to wake:
an ask arriving then got a new lock and was decided beside the waiter, each on a copy that still
held the person's "once" grant, so one "once" allowed two commands (and one run could take as
many of the daemon's threads as it could time asks for). Secure: a run's turn lasts while any of
its asks holds or waits for it.

Driven step by step: the evaluation in its thread waits on events the test sets, and the copy of
the grants (taken on the loop as an ask's turn starts) is counted. No clock.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

import console.daemon.evaluation as evaluation
from console.daemon.evaluation import PolicyEvaluator
from console.daemon.live_config import LiveConfig
from console.policy import GrantTable, new_grant

CONFIG = """
[profiles.t]
command = ["true"]
[profiles.t.exec]
default = "ask"
allow = ["ls"]
"""



def counted_copies(monkeypatch: pytest.MonkeyPatch, grants: GrantTable) -> list[int]:
    """One entry per copy of the grants taken: one per command being decided."""
    copies: list[int] = []
    real_trial = grants.trial
    monkeypatch.setattr(grants, "trial", lambda extra: copies.append(1) or real_trial(extra))
    return copies

def test_a_once_grant_allows_one_command_when_asks_overlap(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "config.toml").write_text(CONFIG)
    grants = GrantTable()
    evaluator = PolicyEvaluator(LiveConfig(tmp_path / "config.toml"), grants)
    first_may_end, others_may_end = threading.Event(), threading.Event()
    first_in = threading.Event()
    real_evaluate = evaluation.evaluate_exec

    def held_evaluate(command: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if command == "ls":
            first_in.set()
            first_may_end.wait(30)
        else:
            others_may_end.wait(30)
        return real_evaluate(command, *args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_exec", held_evaluate)
    copies = counted_copies(monkeypatch, grants)

    async def scenario() -> tuple[list[str], int]:
        first = asyncio.create_task(evaluator.ask("exec", "ls", "r1", "t"))
        while not first_in.is_set():
            await asyncio.sleep(0.01)
        grants.add(new_grant("exec", "make deploy", "allow", "once", run_id="r1", profile="t",
                             decided_by="person"))
        waiter = asyncio.create_task(evaluator.ask("exec", "make deploy", "r1", "t"))
        for _ in range(5):
            await asyncio.sleep(0)
        first_may_end.set()
        await first  # the waiter wakes and takes its copy of the grants
        late = asyncio.create_task(evaluator.ask("exec", "make deploy", "r1", "t"))
        for _ in range(5):
            await asyncio.sleep(0)
        decided_beside = len(copies)
        others_may_end.set()
        answers = await asyncio.gather(waiter, late)
        return [d.action.value for d in answers], decided_beside

    effects, copies_while_one_was_decided = asyncio.run(scenario())
    assert sorted(effects) == ["allow", "ask"], f"one once grant answered {effects}"
    assert copies_while_one_was_decided == 2, "an ask of run r1 was decided beside another of r1"
    assert evaluator._evaluating == {}, "a run's turn stayed behind once its asks were answered"


def test_a_cancelled_ask_keeps_its_runs_turn_until_its_thread_ends(
        tmp_path: Path, monkeypatch) -> None:
    """agent.sock cancels a connection's asks when it closes, but the thread deciding one goes
    on: had the run's turn ended with the cancel, an agent that opens, asks and closes again and
    again has as many costly evaluations running at once as it asks (filling the threads the
    daemon's history and every other run share)."""
    (tmp_path / "config.toml").write_text(CONFIG)
    grants = GrantTable()
    evaluator = PolicyEvaluator(LiveConfig(tmp_path / "config.toml"), grants)
    may_end, entered = threading.Event(), threading.Event()
    real_evaluate = evaluation.evaluate_exec

    def held_evaluate(command: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        entered.set()
        may_end.wait(30)
        return real_evaluate(command, *args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_exec", held_evaluate)
    copies = counted_copies(monkeypatch, grants)

    async def scenario() -> tuple[int, str]:
        closed = asyncio.create_task(evaluator.ask("exec", "ls", "r1", "t"))
        while not entered.is_set():
            await asyncio.sleep(0.01)
        closed.cancel()  # its connection closed; its thread still decides
        next_ask = asyncio.create_task(evaluator.ask("exec", "ls", "r1", "t"))
        for _ in range(5):
            await asyncio.sleep(0)
        decided_beside = len(copies)
        may_end.set()
        answer = await next_ask
        return decided_beside, answer.action.value

    copies_while_one_was_decided, action = asyncio.run(scenario())
    assert copies_while_one_was_decided == 1, "a run's next ask was decided beside a cancelled one"
    assert action == "allow"
    assert evaluator._evaluating == {}, "a run's turn stayed behind once its asks were answered"
