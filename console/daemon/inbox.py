"""The approvals inbox: one queue of pending requests for all runs.

No I/O of its own: security events go through the `record` callback, which must commit before
returning (the store's writer). The order of things is the guarantee:

- a request is recorded (`approval.requested`) before anyone can see or decide it; if recording
  fails, the request is refused (fail closed);
- a decision is recorded (`approval.decided`) before the waiter is released or a grant exists;
  if recording fails, nothing is applied and the decider gets the error;
- the first decision wins; later ones get "already decided by X at T";
- an unanswered request is denied when the timeout runs out (provenance "timeout").

Floods from inside a sandbox are bounded per run: pending requests, a request rate, and
the size of each request. Refusals are recorded too, at most one burst per rate window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from console.daemon.requests import (  # the EVENT_ names: imported from here too
    EVENT_CANCELLED,
    EVENT_DECIDED,
    EVENT_POLICY,
    EVENT_REFUSED,
    EVENT_REFUSED_OP,  # noqa: F401 (agent_socket imports it from here)
    EVENT_REQUESTED,
    DecisionResult,
    Outcome,
    ProfileLookup,
    Request,
    answering_grant,
    check_request,
    event_text,
    parse_scope_arg,
    refusal_data,
)
from console.policy import (
    Decision,
    Grant,
    GrantTable,
    Provenance,
    new_grant,
    subject_too_long,
)
from console.protocol import Failure, new_id
from console.text import printable

log = logging.getLogger(__name__)
# (kind, subject, run_id, profile) -> the decision of the rules and grants in force now
PolicyNow = Callable[[str, str, str, str], "Decision | Awaitable[Decision]"]

RecordFn = Callable[[str, dict[str, Any]], Awaitable[Any]]


@dataclass
class _Window:
    start: float = 0.0
    count: int = 0
    suppressed: int = 0


class Inbox:
    def __init__(
        self, record: RecordFn, notify: Callable[[Request], None] | None = None,
        timeout_s: float = 120.0, *, grants: GrantTable | None = None,
        max_pending_per_run: int = 32, max_rate_per_run: tuple[int, float] = (20, 10.0),
        clock: Callable[[], float] = time.time,
        on_change: Callable[[dict[str, Any]], None] | None = None,
        keep_closed: int = 1000,
        profile_of: Callable[[str], Any] | None = None,
        policy_now: PolicyNow | None = None,
    ) -> None:  # fmt: skip
        self._record = record
        # The rules and grants in force now (the daemon's policy evaluator): a rule added
        # since a request was asked (a reload) outranks a person's or a grant's allow.
        self._policy_now = policy_now
        # Runs whose requests were cancelled (stopping or ended), and why: a request one of
        # them sends later is refused at once, never left for a person to approve.
        self._cancelled_runs: dict[str, str] = {}
        self._notify = notify
        self.timeout_s = timeout_s
        self._profiles = ProfileLookup(profile_of, timeout_s)  # its approval_timeout and ports
        self.grants = grants if grants is not None else GrantTable(clock)
        self.max_pending_per_run = max_pending_per_run
        self.max_rate_per_run = max_rate_per_run
        self._clock = clock
        self._listeners: list[Callable[[dict[str, Any]], None]] = [on_change] if on_change else []
        self._keep_closed = keep_closed
        self._open: dict[str, Request] = {}  # recording or pending
        self._closed: OrderedDict[str, Request] = OrderedDict()
        self._rates: dict[str, deque[float]] = {}
        self._refusals: dict[str, _Window] = {}

    # --- reading ---------------------------------------------------------------------------

    def pending(self, run_id: str | None = None) -> list[Request]:
        """Pending requests, oldest first."""
        reqs = [r for r in self._open.values() if r.state == "pending"]
        reqs = [r for r in reqs if run_id is None or r.run_id == run_id]
        return sorted(reqs, key=lambda r: r.created_at)

    def get(self, request_id: str) -> Request | None:
        req = self._open.get(request_id) or self._closed.get(request_id)
        return None if req is None or req.state == "recording" else req

    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """callback({"kind": "approval.requested" | "approval.resolved", "request": {...}}) on
        every change; returns the function that unsubscribes."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _emit(self, kind: str, req: Request) -> None:
        payload = {"kind": kind, "request": req.to_dict(self._clock())}
        for cb in list(self._listeners):
            try:
                cb(payload)
            except Exception:  # a broken subscriber must not break approvals
                log.exception("approvals listener failed")

    # --- asking ----------------------------------------------------------------------------

    async def submit(
        self, run_id: str, profile: str, kind: str, subject: str,
        detail: dict[str, Any] | None = None, rule_provenance: Provenance | None = None, *,
        title: str | None = None, grant_patterns: Sequence[str] | None = None,
    ) -> Outcome:
        """Ask a person; wait for the decision or the timeout. Never raises for a refusal."""
        now = self._clock()
        reason = check_request(kind, subject, title, detail)
        if reason is None and run_id in self._cancelled_runs:
            reason = f"this run's requests are closed ({self._cancelled_runs[run_id]})"
        if reason is None:
            reason = self._over_limit(run_id, now)
        if reason is not None:
            return await self.refuse(run_id, profile, kind, subject, reason)
        self._rates.setdefault(run_id, deque()).append(now)
        req = Request(
            id=self._new_id(), run_id=run_id, profile=profile, kind=kind, subject=subject,
            title=title or "",  # the agent's own words only: none when it gave none
            detail=dict(detail or {}), created_at=now, rule_provenance=rule_provenance,
            timeout_s=self._profiles.timeout(profile),
            grant_patterns=tuple(grant_patterns) if grant_patterns is not None else (
                () if kind == "exec" else (subject,)),
        )
        self._open[req.id] = req  # counted against the cap from here, invisible until recorded
        try:
            try:
                await self._rec(EVENT_REQUESTED, self._record_data(req))
            except Exception as exc:
                log.warning("recording approval request failed: %s", exc)
                uncertain = getattr(exc, "uncertain", False)  # store/waits: it may yet land
                said = "is not confirmed as recorded" if uncertain else "could not be recorded"
                prov = Provenance("error", detail=f"the request {said} ({exc}); refused")
                if uncertain:  # it may land: then with a recorded close, not pending for good
                    await self._record_close(req, prov)
                if req.state == "recording":
                    self._close(req, "denied", prov, emit=False)
                return self._outcome(req)
            req.state = "pending"
            self._emit("approval.requested", req)
            if self._notify is not None:
                try:
                    self._notify(req)
                except Exception:
                    log.exception("approvals notify failed")
            try:
                await asyncio.wait_for(req.done.wait(), req.timeout_s)
            except TimeoutError:
                await self._time_out(req)
        except asyncio.CancelledError:
            # The asker went away (agent.sock closed): the prompt would answer no one.
            await self._close_recorded(req, "cancelled", Provenance(
                "cancelled", detail="the asking process went away"))
            raise
        return self._outcome(req)

    async def refuse(self, run_id: str, profile: str, kind: str, subject: Any, reason: str) -> Outcome:
        """Refuse without asking (bounds, limits): recorded, at most one burst per window."""
        prov = Provenance("limit", detail=f"refused: {reason}")
        await self.record_refusal(EVENT_REFUSED, run_id, refusal_data(run_id, profile, kind,
                                                                       subject, prov))
        return Outcome(False, prov, None)

    def _over_limit(self, run_id: str, now: float) -> str | None:
        open_n = sum(1 for r in self._open.values() if r.run_id == run_id)
        if open_n >= self.max_pending_per_run:
            return (f"this run already has {open_n} requests waiting (at most "
                    f"{self.max_pending_per_run}); wait for answers first")
        count, window = self.max_rate_per_run
        times = self._rates.setdefault(run_id, deque())
        while times and now - times[0] >= window:
            times.popleft()
        if len(times) >= count:
            return f"more than {count} requests in {window:g}s from this run; slow down"
        return None

    async def record_refusal(self, event: str, run_id: str, data: dict[str, Any]) -> None:
        """Record a refusal, throttled per run: the first `count` per window, then a count of
        the suppressed ones in the next record (a flood must not flood the store)."""
        now = self._clock()
        count, window = self.max_rate_per_run
        w = self._refusals.setdefault(run_id, _Window(now))
        if now - w.start >= window:
            w.start, w.count = now, 0
        if w.count >= count:
            w.suppressed += 1
            return
        w.count += 1
        if w.suppressed:
            data = {**data, "suppressed_before": w.suppressed}
            w.suppressed = 0
        await self.record_refused(event, data)

    async def record_refused(self, event: str, data: dict[str, Any]) -> bool:
        """Record a refusal now (whoever calls this bounds the rows): False, and one log
        line, when it could not be recorded. The refusal stands either way."""
        try:
            await self._rec(event, data)
            return True
        except Exception as exc:  # already refused; nothing more to close
            log.warning("recording a refusal failed: %s", exc)
            return False

    async def record_policy(self, run_id: str, profile: str, kind: str, subject: str,
                            action: str, provenance: Provenance, detail: dict[str, Any] | None = None) -> None:
        """Record a decision rules or grants made without a person. Raises if recording fails:
        the caller must then refuse (an allow nobody can audit is not given)."""
        await self._rec(EVENT_POLICY, {
            "actor": "policy", "run_id": run_id, "profile": profile, "kind": kind, "subject": subject,
            "action": action, "provenance": provenance.to_dict(), "detail": detail or {}})

    # --- deciding --------------------------------------------------------------------------

    async def decide(
        self, request_id: str, allow: bool, actor: str, scope: str = "once", *,
        pattern: str | None = None,
    ) -> DecisionResult:
        """A person's answer. Raises Failure (unknown_request, already_decided, bad_scope,
        bad_pattern, record_failed; rule_overridden: the policy in force now denies what was
        asked, and the request is closed as denied); nothing of the answer is applied when it
        raises."""
        if not actor:
            raise Failure("no-actor", "a decision needs the deciding person's user name")
        sc = parse_scope_arg(scope)
        req = self.get(request_id)
        if req is None:
            raise Failure("unknown-request", f'no approval request "{printable(request_id, 40)}"',
                          hint="`pilothouse approvals` lists the pending ones")
        forbidding = None
        async with req.lock:  # a second decider waits here, then sees the first one's answer
            if req.state != "pending":
                raise Failure("already-decided", req.closed_message())
            forbidding = await self._forbidding(req) if allow else None
            if forbidding is None:
                now, prov, grants, note = await self._apply_decision(req, allow, actor, sc,
                                                                     pattern)
        if forbidding is None:
            also = await self._answer_pending_from_grants() if grants else ()
            return DecisionResult(req.id, allow, actor, sc.kind, now, prov, tuple(grants), note,
                                  also)
        # Closed as the rule in force says (recorded), then the person is told why.
        await self._close_recorded(req, "denied", forbidding.provenance, EVENT_DECIDED)
        raise Failure("rule-overridden", f"{req.id} was not allowed: the policy in force now "
                      f"denies it ({forbidding.provenance.describe()}); it is closed as denied",
                      hint="a rule added since the agent asked (a reload) outranks an approval")

    async def _apply_decision(self, req: Request, allow: bool, actor: str, sc: Any,
                              pattern: str | None) -> tuple[float, Provenance, list[Grant], str]:
        """decide() past its checks, holding req.lock: recorded, then applied. Returns (when,
        provenance, the grants made, a note)."""
        now = self._clock()
        grants, note = self._grants_for(req, allow, actor, sc, pattern, now)
        prov = Provenance("person", person=actor, scope=sc.kind,
                          grant_id=grants[0].id if grants else None,
                          expires_at=grants[0].expires_at if grants else None)
        data = {**self._decision_data(req, allow, prov), "actor": actor, "scope": sc.kind,
                "grants": [g.to_dict() for g in grants]}
        try:
            await self._rec(EVENT_DECIDED, data)
        except Exception as exc:  # one that may yet land is not said unrecorded (store/waits.py)
            said = "is not confirmed as" if getattr(exc, "uncertain", False) else "could not be"
            raise Failure("record-failed", f"the decision on {req.id} {said} recorded, "
                          f"so it was not applied: {exc}",
                          hint="check the store (`pilothouse doctor`), then decide again") from None
        for g in grants:
            self.grants.add(g)
        req.decided_by, req.scope = actor, sc.kind
        self._close(req, "allowed" if allow else "denied", prov, at=now)
        return now, prov, grants, note

    async def _forbidding(self, req: Request) -> Decision | None:
        """The policy in force now, when it denies req (a forbid or deny rule, a deny grant);
        None when it does not, or when nothing here can say."""
        decision = await self._policy_says(req)
        return decision if decision is not None and decision.action == "deny" else None

    async def _policy_says(self, req: Request) -> Decision | None:
        """What the rules and grants in force now decide for req (None: nothing here can say)."""
        if self._policy_now is None:
            return None
        try:
            decision = self._policy_now(req.kind, req.subject, req.run_id, req.profile)
            return decision if isinstance(decision, Decision) else await decision
        except Exception as exc:  # fail closed: an allow nobody could check is not given
            return Decision("deny", Provenance("error", detail=f"the policy in force could not "
                                                             f"be checked ({exc}); denied"))

    async def close_forbidden(self) -> tuple[str, ...]:
        """After a reload: pending requests the policy in force now denies are closed as
        denied (recorded), so the agent hears it at once and nobody can approve them."""
        closed = []
        for req in self.pending():
            forbidding = await self._forbidding(req)
            if forbidding is not None and await self._close_recorded(
                    req, "denied", forbidding.provenance, EVENT_DECIDED):
                closed.append(req.id)
        return tuple(closed)

    def _grants_for(self, req: Request, allow: bool, actor: str, sc: Any,
                    pattern: str | None, now: float) -> tuple[list[Grant], str]:
        if sc.kind == "once":
            return [], ""
        if pattern and (too_long := subject_too_long(pattern)):  # it could answer no request
            raise Failure("bad-pattern", f"the pattern is too long: {too_long}")
        if why := req.why_no_grants(pattern):
            return [], f"scope {sc.kind} made no grant: {why}"
        patterns = [(pattern, None)] if pattern else (
            req.own_grant_parts() if allow else [(p, None) for p in req.grant_patterns])
        if not patterns:
            return [], (f"scope {sc.kind} made no grant: a command whose words depend on a "
                        "substitution or an expansion, or that runs or writes what its words "
                        "do not show (a here-document, a script piped into a program), is "
                        "asked every time (a grant would hold its words only, another command)")
        # The request's own command makes an exact grant; a pattern the person typed covers
        # added words too (allow rules' reading: never a write or executing option). Either is
        # read by the grammar config rules use, so no grant holds what a config could not.
        try:
            grants = [new_grant(req.kind, p, "allow" if allow else "deny", sc, run_id=req.run_id,
                                profile=req.profile, decided_by=actor, now=now,
                                exact=pattern is None, context=context) for p, context in patterns]
        except ValueError as exc:
            shown = printable(pattern or patterns[0][0], 80)
            raise Failure("bad-pattern", f'pattern "{shown}": {exc}') from None
        if (pattern is not None and req.grant_patterns and not req.too_many_parts
                and answering_grant(self.grants.trial(grants), req, now, self._profiles) is None):
            raise Failure("bad-pattern", f'pattern "{printable(pattern, 80)}" does not cover '
                          f"this request ({req.summary(80)})", "give one that does, or none")
        return grants, ""

    def would_answer(self, request_id: str, allow: bool, scope: str,
                     pattern: str | None = None) -> list[tuple[Request, bool]]:
        """The other pending requests this decision's grants would answer too, each with whether
        it would be allowed, so a person sees them before a wide scope decides them (a rule in
        force that denies one still closes it denied). Failure as decide() for a bad scope."""
        sc = parse_scope_arg(scope)
        req = self.get(request_id)
        if req is None or req.state != "pending":
            return []
        now = self._clock()
        table = self.grants.trial(self._grants_for(req, allow, "preview", sc, pattern, now)[0])
        return [(other, g.effect == "allow") for other in self.pending()
                if other is not req and (g := answering_grant(table, other, now, self._profiles))]

    async def _answer_pending_from_grants(self) -> tuple[str, ...]:
        """Pending requests that grants now answer are decided without asking again."""
        answered = []
        for req in self.pending():
            g = answering_grant(self.grants, req, self._clock(), self._profiles)
            if g is None:
                continue
            deny = g if g.effect == "deny" else None
            says = None if deny else await self._policy_says(req)
            forbidding = says if says is not None and says.action == "deny" else None
            now = self._clock()
            if says is not None and says.action == "ask":
                continue  # the hook's next ask would ask (a grant a part relied on is gone): a person
            if forbidding is not None:  # a grant never outranks a rule that denies
                if await self._close_recorded(req, "denied", forbidding.provenance,
                                              EVENT_DECIDED):
                    answered.append(req.id)
                continue
            async with req.lock:  # g must answer it still: the look above waited, off the loop
                if req.state != "pending" or answering_grant(self.grants, req, now, self._profiles) is not g:
                    continue  # a grant revoked meanwhile answers nothing; a person does
                prov = g.provenance()
                try:
                    await self._rec(EVENT_DECIDED, {
                        **self._decision_data(req, deny is None, prov), "actor": "policy"})
                except Exception as exc:
                    log.warning("recording a grant's decision failed: %s", exc)
                    continue  # stays pending: a person can still answer it
                self.grants.consume(g)
                self._close(req, "denied" if deny else "allowed", prov, at=now)
                answered.append(req.id)
        return tuple(answered)

    async def cancel_run(self, run_id: str, reason: str = "run ended") -> list[Request]:
        """Close a run's pending requests (denied, provenance "cancelled"), drop its grants; its
        later requests are refused (a run being stopped may still ask during its grace)."""
        self._cancelled_runs.setdefault(run_id, reason)
        closed = []
        for req in [r for r in self._open.values() if r.run_id == run_id]:
            if await self._close_recorded(req, "cancelled", Provenance("cancelled", detail=reason)):
                closed.append(req)
        self.grants.end_run(run_id)
        self._rates.pop(run_id, None)
        self._refusals.pop(run_id, None)
        return closed

    # --- internals ---------------------------------------------------------------------------

    async def _rec(self, event: str, data: dict[str, Any]) -> Any:
        """record(), with "actor" and a one-line "text" filled in for the history view."""
        data = dict(data)
        data.setdefault("actor", f"run:{data.get('run_id', '?')}")
        data.setdefault("text", event_text(event, data))
        return await self._record(event, data)

    async def _time_out(self, req: Request) -> None:
        await self._close_recorded(req, "timeout", Provenance(
            "timeout", detail=f"no answer within {req.timeout_s or self.timeout_s:g}s; denied"),
            event=EVENT_DECIDED)

    async def _close_recorded(self, req: Request, state: str, prov: Provenance,
                              event: str = EVENT_CANCELLED) -> bool:
        """Deny-side closings: recorded first, but applied even if recording fails (a denial
        is the safe side)."""
        async with req.lock:
            if req.state not in ("pending", "recording"):
                return False
            try:  # also when still "recording": that record may have landed
                await self._rec(event, {**self._decision_data(req, False, prov), "actor": "daemon"})
            except Exception as exc:
                log.warning("recording %s of %s failed: %s", state, req.id, exc)
            self._close(req, state, prov, emit=req.state == "pending")
            return True

    async def _record_close(self, req: Request, prov: Provenance) -> None:
        """Best effort: tried again while the store withdraws it (stuck), for as long as the
        asker would wait for a person, until it lands or may."""
        deadline = time.monotonic() + (req.timeout_s or self.timeout_s)
        while req.state == "recording":
            try:
                await self._rec(EVENT_CANCELLED, {
                    **self._decision_data(req, False, prov), "actor": "daemon"})
                break
            except Exception as exc:
                if getattr(exc, "uncertain", False) or time.monotonic() >= deadline:
                    log.warning("recording the close of %s failed: %s", req.id, exc)
                    break
            await asyncio.sleep(0.2)

    def _close(self, req: Request, state: str, prov: Provenance, *, at: float | None = None,
               emit: bool = True) -> None:
        req.state, req.provenance = state, prov
        req.decided_at = self._clock() if at is None else at
        self._open.pop(req.id, None)
        self._closed[req.id] = req
        while len(self._closed) > self._keep_closed:
            self._closed.popitem(last=False)
        req.done.set()
        if emit:
            self._emit("approval.resolved", req)

    def _outcome(self, req: Request) -> Outcome:
        prov = req.provenance or Provenance("error", detail="no decision")
        return Outcome(req.allowed, prov, req.id if req.state != "recording" else None)

    def _record_data(self, req: Request) -> dict[str, Any]:
        data = req.to_dict(self._clock())
        for k in ("summary", "age", "state", "provenance", "decided_by", "decided_at", "scope"):
            data.pop(k)
        return data

    @staticmethod
    def _decision_data(req: Request, allow: bool, prov: Provenance) -> dict[str, Any]:
        return {"id": req.id, "run_id": req.run_id, "profile": req.profile, "kind": req.kind,
                "subject": req.subject, "allow": allow, "provenance": prov.to_dict()}

    def _new_id(self) -> str:
        length = 4
        while True:
            for _ in range(20):
                rid = new_id(length)
                if rid not in self._open and rid not in self._closed:
                    return rid
            length += 1

