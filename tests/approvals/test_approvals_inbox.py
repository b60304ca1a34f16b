"""The inbox: ordering of records, first decision wins, timeouts, grants, limits, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from console.daemon.inbox import (
    EVENT_CANCELLED,
    EVENT_DECIDED,
    EVENT_REFUSED,
    EVENT_REQUESTED,
    Inbox,
)
from console.daemon.requests import DETAIL_MAX_BYTES
from console.policy import SUBJECT_MAX_BYTES, GrantTable, Provenance
from console.protocol import Failure

from .conftest import WAIT, Clock, Recorder, next_pending


def make_inbox(recorder: Recorder, **kw) -> Inbox:
    kw.setdefault("timeout_s", WAIT)
    inbox = Inbox(recorder, **kw)
    recorder.inbox = inbox
    return inbox


async def test_request_is_recorded_before_it_is_visible_and_decided(recorder: Recorder) -> None:
    inbox = make_inbox(recorder)
    seen = []
    inbox.subscribe(seen.append)
    rule = Provenance("rule", rule="git push", rule_list="ask", source="config.toml:14")
    task = asyncio.create_task(inbox.submit("r1", "demo", "exec", "git push", {"cwd": "/w"}, rule))
    req = await next_pending(inbox)
    assert recorder.kinds() == [EVENT_REQUESTED]
    assert req.id not in recorder.visible_at_record[0]  # not visible while being recorded
    assert len(req.id) >= 4 and req.summary() == "exec git push (agent: in /w)"
    assert req.to_dict()["rule_provenance"]["source"] == "config.toml:14"

    result = await inbox.decide(req.id, True, "alice", "once")
    outcome = await asyncio.wait_for(task, WAIT)
    assert outcome.allow and outcome.request_id == req.id
    assert outcome.provenance.kind == "person" and outcome.provenance.person == "alice"
    assert outcome.reason == "decided by alice (scope once)"
    assert result.grants == ()
    decided = recorder.of(EVENT_DECIDED)[0]
    assert decided["actor"] == "alice" and decided["allow"] is True and decided["id"] == req.id
    assert [e["kind"] for e in seen] == ["approval.requested", "approval.resolved"]
    assert inbox.pending() == []


async def test_decision_is_recorded_before_the_waiter_is_released() -> None:
    order: list[str] = []
    inbox: Inbox

    async def record(kind: str, data: dict) -> None:
        if kind == EVENT_DECIDED:
            req = inbox.get(data["id"])
            assert req is not None and not req.done.is_set()
            order.append("recorded")

    inbox = Inbox(record, timeout_s=WAIT)

    async def ask() -> None:
        await inbox.submit("r1", "demo", "exec", "ls")
        order.append("released")

    task = asyncio.create_task(ask())
    req = await next_pending(inbox)
    await inbox.decide(req.id, False, "bob")
    await asyncio.wait_for(task, WAIT)
    assert order == ["recorded", "released"]


async def test_first_decision_wins(recorder: Recorder) -> None:
    inbox = make_inbox(recorder)
    task = asyncio.create_task(inbox.submit("r1", "demo", "exec", "git push"))
    req = await next_pending(inbox)
    first, second = await asyncio.gather(
        inbox.decide(req.id, True, "alice"), inbox.decide(req.id, False, "bob"),
        return_exceptions=True)
    assert not isinstance(first, BaseException) and first.allow
    assert isinstance(second, Failure) and second.code == "already-decided"
    assert "already decided by alice at" in second.message and "(allowed)" in second.message
    assert (await task).allow
    assert len(recorder.of(EVENT_DECIDED)) == 1
    with pytest.raises(Failure, match="already decided by alice"):
        await inbox.decide(req.id, True, "carol")


async def test_unknown_id_and_bad_scope_are_clear_errors(recorder: Recorder) -> None:
    inbox = make_inbox(recorder)
    with pytest.raises(Failure) as err:
        await inbox.decide("zzzz", True, "alice")
    assert err.value.code == "unknown-request" and "zzzz" in err.value.message
    task = asyncio.create_task(inbox.submit("r1", "demo", "exec", "ls"))
    req = await next_pending(inbox)
    with pytest.raises(Failure) as err:
        await inbox.decide(req.id, True, "alice", "forever")
    assert err.value.code == "bad-scope" and "10m" in err.value.message
    await inbox.decide(req.id, False, "alice")
    await task


async def test_timeout_denies_with_timeout_provenance(recorder: Recorder) -> None:
    inbox = make_inbox(recorder, timeout_s=0.05)
    outcome = await asyncio.wait_for(inbox.submit("r1", "demo", "exec", "ls"), WAIT)
    assert not outcome.allow
    assert outcome.provenance.kind == "timeout" and "no answer within 0.05s" in outcome.reason
    assert recorder.kinds() == [EVENT_REQUESTED, EVENT_DECIDED]
    with pytest.raises(Failure, match="already closed"):
        await inbox.decide(outcome.request_id or "", True, "alice")


async def test_unrecordable_request_is_refused(recorder: Recorder) -> None:
    recorder.fail = {EVENT_REQUESTED}
    inbox = make_inbox(recorder)
    outcome = await asyncio.wait_for(inbox.submit("r1", "demo", "exec", "ls"), WAIT)
    assert not outcome.allow and outcome.provenance.kind == "error"
    assert "could not be recorded" in outcome.reason
    assert inbox.pending() == []


async def test_unrecordable_decision_is_not_applied(recorder: Recorder) -> None:
    inbox = make_inbox(recorder)
    task = asyncio.create_task(inbox.submit("r1", "demo", "exec", "git push"))
    req = await next_pending(inbox)
    recorder.fail = {EVENT_DECIDED}
    with pytest.raises(Failure) as err:
        await inbox.decide(req.id, True, "alice", "run")
    assert err.value.code == "record-failed" and "not applied" in err.value.message
    assert not task.done() and inbox.pending() == [req]
    assert inbox.grants.list() == []  # no grant either
    recorder.fail = set()
    await inbox.decide(req.id, False, "alice")
    assert not (await task).allow


async def test_run_grant_answers_later_requests_of_that_run_only(recorder: Recorder) -> None:
    inbox = make_inbox(recorder)
    task = asyncio.create_task(inbox.submit(
        "r1", "demo", "exec", "git push origin main", grant_patterns=["git push origin main"]))
    req = await next_pending(inbox)
    result = await inbox.decide(req.id, True, "alice", "run")
    assert (await task).allow
    (grant,) = result.grants
    assert grant.run_id == "r1" and grant.scope == "run" and grant.decided_by == "alice"
    assert result.provenance.describe() == f"decided by alice (scope run, grant {grant.id})"

    # the same pattern in the same run: matched by the grant (as policy evaluation would)
    g = inbox.grants.match("exec", "git push origin main", "r1", "demo")
    assert g is grant
    assert g.provenance().describe() == f"grant {grant.id} (scope run) by alice"
    # another run of the same profile still asks
    assert inbox.grants.match("exec", "git push origin main", "r2", "demo") is None
    # the run ends: its grants go
    await inbox.cancel_run("r1")
    assert inbox.grants.match("exec", "git push origin main", "r1", "demo") is None


async def test_a_new_grant_answers_matching_pending_requests(recorder: Recorder) -> None:
    inbox = make_inbox(recorder)
    t1 = asyncio.create_task(inbox.submit("r1", "demo", "network", "pypi.org:443"))
    first = await next_pending(inbox)
    t2 = asyncio.create_task(inbox.submit("r1", "demo", "network", "pypi.org:443"))
    t3 = asyncio.create_task(inbox.submit("r2", "demo", "network", "pypi.org:443"))
    while len(inbox.pending()) < 3:
        await asyncio.sleep(0.01)
    result = await inbox.decide(first.id, False, "alice", "run")
    assert len(result.also_decided) == 1
    o1, o2 = await asyncio.wait_for(asyncio.gather(t1, t2), WAIT)
    assert not o1.allow and not o2.allow
    assert o2.provenance.kind == "grant" and o2.provenance.grant_id == result.grants[0].id
    assert [r.run_id for r in inbox.pending()] == ["r2"]  # the other run still waits
    await inbox.cancel_run("r2")
    assert (await t3).provenance.describe() == "run ended"


async def test_timed_grant_expires_with_the_clock(recorder: Recorder, clock: Clock) -> None:
    grants = GrantTable(clock)
    inbox = make_inbox(recorder, grants=grants, clock=clock)
    task = asyncio.create_task(inbox.submit("r1", "demo", "write", "src/app.py"))
    req = await next_pending(inbox)
    (grant,) = (await inbox.decide(req.id, True, "alice", "10m")).grants
    await task
    assert grant.scope == "timed" and grant.expires_at == clock.now + 600
    assert grants.match("write", "src/app.py", "r1", "demo") is grant
    clock.now += 599
    assert grants.match("write", "src/app.py", "r1", "demo") is grant
    clock.now += 1
    assert grants.match("write", "src/app.py", "r1", "demo") is None
    assert grants.list() == []


async def test_profile_and_global_scopes(recorder: Recorder) -> None:
    inbox = make_inbox(recorder)
    for scope, other_profile_matches in (("profile", False), ("global", True)):
        task = asyncio.create_task(inbox.submit("r1", "demo", "custom", f"deploy {scope}"))
        req = await next_pending(inbox)
        (grant,) = (await inbox.decide(req.id, True, "alice", scope)).grants
        await task
        assert grant.run_id is None
        assert inbox.grants.match("custom", f"deploy {scope}", "r9", "demo") is grant
        found = inbox.grants.match("custom", f"deploy {scope}", "r9", "other")
        assert (found is grant) == other_profile_matches


async def test_pending_cap_is_per_run_and_recorded(recorder: Recorder) -> None:
    inbox = make_inbox(recorder, max_pending_per_run=2, max_rate_per_run=(100, 10.0))
    tasks = [asyncio.create_task(inbox.submit("r1", "demo", "exec", f"cmd {i}")) for i in range(2)]
    while len(inbox.pending()) < 2:
        await asyncio.sleep(0.01)
    refused = await inbox.submit("r1", "demo", "exec", "cmd 3")
    assert not refused.allow and refused.provenance.kind == "limit"
    assert "already has 2 requests waiting" in refused.reason
    assert recorder.of(EVENT_REFUSED)[-1]["subject"] == "cmd 3"
    other = asyncio.create_task(inbox.submit("r2", "demo", "exec", "cmd"))  # another run: fine
    await next_pending(inbox, "r2")
    await inbox.cancel_run("r1")
    await inbox.cancel_run("r2")
    outcomes = await asyncio.gather(*tasks, other)
    assert all(o.provenance.kind == "cancelled" and not o.allow for o in outcomes)
    assert len(recorder.of(EVENT_CANCELLED)) == 3


async def test_rate_limit_per_run_with_a_window(recorder: Recorder, clock: Clock) -> None:
    inbox = make_inbox(recorder, max_rate_per_run=(3, 10.0), timeout_s=0, clock=clock)
    results = [await inbox.submit("r1", "demo", "exec", "ls") for _ in range(4)]
    assert [o.provenance.kind for o in results] == ["timeout"] * 3 + ["limit"]
    assert "more than 3 requests in 10s" in results[3].reason
    assert (await inbox.submit("r2", "demo", "exec", "ls")).provenance.kind == "timeout"
    clock.now += 10
    assert (await inbox.submit("r1", "demo", "exec", "ls")).provenance.kind == "timeout"


async def test_refusals_are_recorded_without_flooding_the_store(recorder: Recorder, clock: Clock) -> None:
    inbox = make_inbox(recorder, max_rate_per_run=(2, 10.0), clock=clock)
    for _ in range(5):
        assert not (await inbox.submit("r1", "demo", "nonsense", "x")).allow
    assert len(recorder.of(EVENT_REFUSED)) == 2
    clock.now += 10
    await inbox.submit("r1", "demo", "nonsense", "x")
    assert recorder.of(EVENT_REFUSED)[-1]["suppressed_before"] == 3


@pytest.mark.parametrize(("subject", "detail", "title", "words"), [
    ("x" * (SUBJECT_MAX_BYTES + 1), None, None, "subject is longer than 4096 bytes"),
    ("é" * (SUBJECT_MAX_BYTES // 2 + 1), None, None, "subject is longer"),
    ("ls", {"blob": "y" * DETAIL_MAX_BYTES}, None, "at most 16384"),
    ("ls", None, "t" * 201, "at most 200 characters"),
    ("", None, None, "needs a subject"),
])
async def test_oversize_requests_are_refused(recorder: Recorder, subject, detail, title, words) -> None:
    inbox = make_inbox(recorder)
    outcome = await inbox.submit("r1", "demo", "exec", subject, detail, title=title)
    assert not outcome.allow and outcome.provenance.kind == "limit"
    assert words in outcome.reason
    assert inbox.pending() == [] and recorder.kinds() == [EVENT_REFUSED]


async def test_cancel_run_closes_its_requests(recorder: Recorder) -> None:
    inbox = make_inbox(recorder)
    mine = asyncio.create_task(inbox.submit("r1", "demo", "exec", "ls"))
    theirs = asyncio.create_task(inbox.submit("r2", "demo", "exec", "ls"))
    await next_pending(inbox, "r1")
    await next_pending(inbox, "r2")
    closed = await inbox.cancel_run("r1")
    outcome = await mine
    assert [r.run_id for r in closed] == ["r1"]
    assert not outcome.allow and outcome.provenance.kind == "cancelled"
    assert outcome.reason == "run ended"
    assert recorder.of(EVENT_CANCELLED)[0]["id"] == outcome.request_id
    assert [r.run_id for r in inbox.pending()] == ["r2"]
    with pytest.raises(Failure, match="already closed"):
        await inbox.decide(outcome.request_id or "", True, "alice")
    await inbox.decide(inbox.pending()[0].id, True, "alice")
    assert (await theirs).allow


async def test_an_abandoned_request_is_closed(recorder: Recorder) -> None:
    inbox = make_inbox(recorder)
    task = asyncio.create_task(inbox.submit("r1", "demo", "exec", "ls"))
    req = await next_pending(inbox)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert inbox.pending() == [] and req.state == "cancelled"
    assert recorder.kinds() == [EVENT_REQUESTED, EVENT_CANCELLED]


async def test_pending_is_oldest_first_with_printable_summaries(recorder: Recorder, clock: Clock) -> None:
    inbox = make_inbox(recorder, clock=clock)
    tasks = []
    for i, subject in enumerate(["first", "second\x1b[31m red", "third\nline"]):
        clock.now += 1
        tasks.append(asyncio.create_task(inbox.submit(f"r{i}", "demo", "exec", subject)))
        await next_pending(inbox, f"r{i}")
    clock.now += 5
    reqs = inbox.pending()
    assert [r.subject for r in reqs] == ["first", "second\x1b[31m red", "third\nline"]
    assert [r.age(clock.now) for r in reqs] == [7.0, 6.0, 5.0]
    assert "\x1b" not in reqs[1].summary() and "\n" not in reqs[2].summary()
    for r in reqs:
        await inbox.decide(r.id, False, "alice")
    await asyncio.gather(*tasks)


async def test_an_allow_the_policy_in_force_now_denies_is_refused_and_closes_as_denied(
        recorder: Recorder) -> None:
    """A rule added since the agent asked (a reload) outranks a person's allow, and a grant's:
    the request is closed as the rule says, recorded, and the person told why."""
    from console.policy import Decision

    now = {"make deploy": "ask"}
    forbid = Provenance("rule", rule="make deploy", rule_list="forbid", source="config.toml:9")

    def policy_now(kind: str, subject: str, run_id: str, profile: str) -> Decision:
        action = now.get(subject, "ask")
        return Decision(action, forbid if action == "deny" else Provenance("default"))

    inbox = make_inbox(recorder, policy_now=policy_now)
    ask = Provenance("rule", rule="make", rule_list="ask", source="config.toml:3")
    task = asyncio.create_task(inbox.submit("r1", "demo", "exec", "make deploy", {}, ask))
    req = await next_pending(inbox)
    now["make deploy"] = "deny"  # the reload
    with pytest.raises(Failure) as refused:
        await inbox.decide(req.id, True, "alice", "once")
    assert refused.value.code == "rule-overridden" and "forbid" in refused.value.message
    outcome = await asyncio.wait_for(task, WAIT)
    assert not outcome.allow and outcome.provenance.rule_list == "forbid"
    assert recorder.of(EVENT_DECIDED)[-1]["allow"] is False
    # A deny is never checked against the rules: it always goes through.
    task = asyncio.create_task(inbox.submit("r1", "demo", "exec", "make deploy", {}, ask))
    req = await next_pending(inbox)
    assert not (await inbox.decide(req.id, False, "alice", "once")).allow
    await asyncio.wait_for(task, WAIT)


async def test_a_reload_closes_the_pending_requests_it_denies(recorder: Recorder) -> None:
    from console.policy import Decision

    denied = set()

    def policy_now(kind: str, subject: str, run_id: str, profile: str) -> Decision:
        return Decision("deny" if subject in denied else "ask", Provenance("default"))

    inbox = make_inbox(recorder, policy_now=policy_now)
    ask = Provenance("rule", rule="make", rule_list="ask", source="config.toml:3")
    tasks = [asyncio.create_task(inbox.submit("r1", "demo", "exec", s, {}, ask))
             for s in ("make deploy", "make build")]
    while len(inbox.pending()) < 2:
        await asyncio.sleep(0.01)
    denied.add("make deploy")
    closed = await inbox.close_forbidden()
    assert [inbox.get(r).subject for r in closed] == ["make deploy"]
    assert not (await asyncio.wait_for(tasks[0], WAIT)).allow
    assert [r.subject for r in inbox.pending()] == ["make build"]
    await inbox.decide(inbox.pending()[0].id, True, "alice", "once")
    assert (await asyncio.wait_for(tasks[1], WAIT)).allow


async def test_a_cancelled_runs_later_requests_are_refused_at_once(recorder: Recorder) -> None:
    """A run being stopped may ask again during its grace: refused, never pending."""
    inbox = make_inbox(recorder)
    await inbox.cancel_run("r1", "stop requested by alice")
    outcome = await asyncio.wait_for(inbox.submit("r1", "demo", "exec", "make deploy", {}), WAIT)
    assert not outcome.allow and "stop requested by alice" in outcome.reason
    assert inbox.pending() == [] and recorder.of(EVENT_REFUSED)
    task = asyncio.create_task(inbox.submit("r2", "demo", "exec", "make deploy", {}))
    assert (await next_pending(inbox)).run_id == "r2"  # other runs ask as before
    task.cancel()


async def test_a_wider_scope_for_a_substitution_says_it_makes_no_grant(recorder: Recorder) -> None:
    """A grant never covers a command with a substitution (its quoted spelling is another
    command): the person who answers `run` is told so instead of getting a grant that would
    never apply (review G round 3, session 12)."""
    inbox = make_inbox(recorder)
    task = asyncio.create_task(inbox.submit(
        "r1", "demo", "exec", "make $(date +%s)", grant_patterns=["make '$(date +%s)'"]))
    req = await next_pending(inbox)
    result = await inbox.decide(req.id, True, "alice", "run")
    assert (await task).allow
    assert result.grants == () and "asked every time" in result.note
    assert inbox.grants.match("exec", "make '$(date +%s)'", "r1", "demo") is None
