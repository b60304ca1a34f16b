"""agent.sock: what a sandboxed agent may say to the daemon. It may ask, and read the state of
its own run's requests; nothing else.

The run is the socket's run (bound per run by the daemon), never anything in the payload. Every
other op (approve, deny, decide, anything) is refused and recorded as `approval.refused_op`.

Ops, as JSON-lines requests (console/protocol.py):

    ask     {kind: exec|network|write|custom, subject | command, cwd?, title?, detail?}
            -> {allow, decision: allow|deny, reason, provenance, request_id}
    claim   {subject, cwd?}  -> as ask: the command a run's shell guard is about to start
            (Codex's commands, console/agents/codex_bash.py). Allowed at once when this run's hook was
            answered allow for the same subject and no claim has taken that answer yet;
            otherwise asked as an exec ask is. A hook killed before it answered (a process
            of the run can kill it) thus leaves its command asked, not run.
    status  {request_id}  -> {request_id, state, kind, subject, summary, age, reason?, allow?}

Requests on one connection may overlap (answers carry the request's id). A client must keep
its side open until it has its answers: end of stream cancels the connection's open requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from console.config.bounds import Bounds, capped
from console.daemon.inbox import EVENT_POLICY, EVENT_REFUSED, EVENT_REFUSED_OP, Inbox
from console.daemon.requests import (
    Outcome,
    agents_detail,
    check_request,
    refusal_data,
    unseen_whole,
)
from console.gate.deciding import TokenBucket
from console.policy import Decision, Provenance
from console.policy.hosts import BadTarget, parse_connect_target
from console.protocol import ErrorCode, Failure
from console.text import printable
from console.wire import (
    AGENT_MAX_LINE,
    MessageRefused,
    ProtocolError,
    encode,
    error,
    ok,
    parse_request,
    read_message,
)

log = logging.getLogger(__name__)

PolicyEval = Callable[[str, str, str, str], Decision | Awaitable[Decision]]


class Admission(Protocol):
    """The flood control (console/daemon/floods.py) as the agent socket uses it."""

    def admit(self, run_id: str, kind: str, subject: str, decision: str,
              data: dict[str, Any]) -> bool:
        """Write this event's row now (True), or count it as a repeat of a written one."""

    def recorded(self, run_id: str, kind: str, subject: str, decision: str) -> None:
        """The row admit() let through is written: repeats may now be counted."""


class ExecTickets:
    """The exec subjects a run's asks were allowed for and whose commands have not been claimed
    yet: each allow lets one claim through, within `ttl` seconds (Codex starts a command within
    milliseconds of its hook's answer: an older allow is of a call that never ran). Bounded,
    the oldest dropped first: its command is then asked again when it starts, never run unasked."""

    def __init__(self, most: int = 64, ttl: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._left: OrderedDict[str, list[float]] = OrderedDict()
        self._most, self._ttl, self._clock = most, ttl, clock

    def grant(self, subject: str) -> None:
        self._left.setdefault(subject, []).append(self._clock())
        self._left.move_to_end(subject)
        while len(self._left) > self._most:
            self._left.popitem(last=False)

    def take(self, subject: str) -> bool:
        now = self._clock()
        left = [t for t in self._left.pop(subject, []) if now - t <= self._ttl]
        if len(left) > 1:
            self._left[subject] = left[1:]
        return bool(left)


CLAIMED = Provenance("hook", detail="allowed by this run's answer to its hook for this command")
MAX_IN_FLIGHT = 64  # per connection; the inbox's per-run cap applies as well
# Messages a run's connections may send together, all ops: past them the next ones wait in their
# sockets. Asks have a rate of their own ([limits] asks_per_second); `status` and refused ops had
# none, and 32 connections of them took the operator's answers from 1 ms to 3 s (review s30).
MESSAGES_PER_SECOND, MESSAGE_BURST = 200, 400
PAST_ASK_RATE = "asks past this run's rate"  # the flood key of every ask refused by the rate
MAX_BAD_MESSAGES = 8
DEFAULT_MAX_CONNECTIONS = Bounds().agent_connections


async def handle_agent_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    run_id: str,
    profile: str,
    inbox: Inbox,
    policy_eval: PolicyEval,
    floods: Admission | None = None,
    asks: TokenBucket | None = None,
    tickets: ExecTickets | None = None,
    messages: TokenBucket | None = None,
) -> None:
    """Serve one connection on a run's agent.sock until it closes. `asks` is the run's ask
    rate, `messages` its rate of messages of any op, and `tickets` its allowed commands not
    yet claimed, all shared by all its connections (no rate: unbounded; no tickets: every
    claim is asked)."""
    write_lock = asyncio.Lock()
    tasks: set[asyncio.Task[None]] = set()
    bad = 0

    async def send(message: dict[str, Any]) -> None:
        async with write_lock:
            writer.write(encode(message))
            await writer.drain()

    async def serve(req_id: Any, op: str, args: dict[str, Any]) -> None:
        try:
            result = await _dispatch(op, args, run_id, profile, inbox, policy_eval, floods, asks,
                                     tickets)
            reply = ok(req_id, result)
        except Failure as exc:
            reply = error(req_id, exc)
        except Exception as exc:  # never a traceback to the sandbox
            log.exception("agent.sock op %s failed", op)
            reply = error(req_id, Failure("internal", f"the daemon could not answer: {type(exc).__name__}"))
        with contextlib.suppress(ConnectionError):
            await send(reply)

    try:
        while True:
            try:
                msg = await read_message(reader, AGENT_MAX_LINE)
                if msg is None:
                    break
                if messages is not None:
                    await _paced(messages)
                req_id, op, args = parse_request(msg)
            except ProtocolError as exc:
                bad += 1
                if messages is not None:  # a line that is not JSON costs what any other does
                    await _paced(messages)  # (review s30: bad lines went unpaced)
                await send(error(None, Failure(ErrorCode.BAD_MESSAGE, str(exc))))
                # An over-long or hostile line cannot be skipped safely; too many bad ones is
                # not a client. One log line, no traceback: this is input, not a bug.
                if isinstance(exc, MessageRefused) or bad >= MAX_BAD_MESSAGES:
                    log.warning("agent.sock of run %s: closed after bad input: %s", run_id, exc)
                    break
                continue
            if len(tasks) >= MAX_IN_FLIGHT:
                await send(error(req_id, Failure("busy", f"more than {MAX_IN_FLIGHT} requests "
                                                 "open on this connection")))
                continue
            task = asyncio.create_task(serve(req_id, op, args))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except ConnectionError:
        pass
    except Exception:  # whatever it was, this connection is over; the daemon goes on
        log.exception("agent.sock connection of run %s failed", run_id)
    finally:
        for t in list(tasks):
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _paced(bucket: TokenBucket) -> None:
    """Wait for the run's next message: its connections' lines wait meanwhile, unread."""
    while not bucket.take():
        await asyncio.sleep(max(0.001, (1 - bucket.tokens) / bucket.rate))


async def _dispatch(op: str, args: dict[str, Any], run_id: str, profile: str, inbox: Inbox,
                    policy_eval: PolicyEval, floods: Admission | None,
                    asks: TokenBucket | None, tickets: ExecTickets | None) -> dict[str, Any]:
    if op == "claim":
        if tickets is not None and tickets.take(str(args.get("subject"))):
            return _answer_parts(True, CLAIMED, None)
        args = {**args, "kind": "exec"}  # no answer to claim: asked as the command it is
    if op in ("ask", "claim"):
        if asks is not None and not asks.take():
            return await _past_rate(args, run_id, profile, inbox, floods, asks)
        answer = await _ask(args, run_id, profile, inbox, policy_eval, floods)
        if (op == "ask" and answer["allow"] and tickets is not None
                and args.get("kind", "exec") == "exec"):
            tickets.grant(str(args.get("subject", args.get("command"))))
        return answer
    if op == "status":
        return _status(args, run_id, inbox)
    await inbox.record_refusal(EVENT_REFUSED_OP, run_id, {
        "run_id": run_id, "profile": profile, "op": printable(op, 80),
        "args": printable(repr(args), 400)})
    raise Failure(ErrorCode.REFUSED_OP, f'"{printable(op, 40)}" is not allowed on agent.sock: an agent can '
                  "ask and read its own requests; only a person at the console decides")


async def _ask(args: dict[str, Any], run_id: str, profile: str, inbox: Inbox,
               policy_eval: PolicyEval, floods: Admission | None) -> dict[str, Any]:
    kind = args.get("kind", "exec")
    subject = args.get("subject", args.get("command"))
    title = args.get("title")
    detail = args.get("detail") or {}
    cwd = args.get("cwd")
    if isinstance(detail, dict) and isinstance(cwd, str):
        detail = {**detail, "cwd": cwd}
    reason = check_request(kind, subject, title, detail)
    if reason is not None:
        return _answer(await inbox.refuse(run_id, profile, kind, subject, reason))
    detail = agents_detail(detail)
    if kind == "network":
        # Decided, shown and granted as the host the gate would connect to: `pаypal.com` (a
        # Cyrillic а) is asked as xn--pypal-4ve.com, never in a spelling that reads as another.
        with contextlib.suppress(BadTarget):  # not a host:port: the policy denies it and says so
            subject = parse_connect_target(subject).authority
    try:
        decision = policy_eval(kind, subject, run_id, profile)
        if inspect.isawaitable(decision):
            decision = await decision
    except Exception as exc:  # fail closed
        log.exception("policy evaluation failed")
        return _answer_parts(False, Provenance("error", detail=f"policy evaluation failed ({exc}); denied"), None)
    if decision.action != "ask":
        flood_key = (run_id, EVENT_POLICY, f"{kind}: {subject}", decision.action)
        if floods is not None and not floods.admit(*flood_key, {
                "kind": kind, "subject": subject, "provenance": decision.provenance.to_dict()}):
            # A repeat within the second of a written row (or a deny past the run's rate):
            # counted into one summary row instead of a row each.
            return _answer_parts(decision.allowed, decision.provenance, None)
        try:
            await inbox.record_policy(run_id, profile, kind, subject, decision.action,
                                      decision.provenance, detail)
        except Exception as exc:
            log.warning("recording a policy decision failed: %s", exc)
            return _answer_parts(False, Provenance(
                "error", detail=f"the decision could not be recorded ({exc}); refused"), None)
        if floods is not None:
            floods.recorded(*flood_key)
        return _answer_parts(decision.allowed, decision.provenance, None)
    if (unseen := unseen_whole(detail)) is not None:
        return _answer(await inbox.refuse(run_id, profile, kind, subject, unseen))
    outcome = await inbox.submit(run_id, profile, kind, subject, detail, decision.provenance,
                                 title=title, grant_patterns=decision.asking or None)
    return _answer(outcome)


async def _past_rate(args: dict[str, Any], run_id: str, profile: str, inbox: Inbox,
                     floods: Admission | None, asks: TokenBucket) -> dict[str, Any]:
    """An ask past the run's rate: denied at once, before any policy work (a crafted command
    costs tens of ms of it, on the loop every run and console shares). Its record is the
    first of the second, or counted into that second's summary row (floods.py)."""
    prov = Provenance("limit", detail=(
        f"too many requests: a run may ask {asks.burst:g} at once, then {asks.rate:g} a "
        "second, and this one asked faster; denied without being decided. Wait a moment and "
        "ask again (the daemon's [limits] ask_burst and asks_per_second)"))
    kind, subject = args.get("kind", "exec"), args.get("subject", args.get("command"))
    data = refusal_data(run_id, profile, kind, subject, prov)
    flood_key = (run_id, EVENT_REFUSED, PAST_ASK_RATE, "deny")
    if ((floods is None or floods.admit(*flood_key, data))
            and await inbox.record_refused(EVENT_REFUSED, data) and floods is not None):
        floods.recorded(*flood_key)
    return _answer_parts(False, prov, None)


def _answer(outcome: Outcome) -> dict[str, Any]:
    return _answer_parts(outcome.allow, outcome.provenance, outcome.request_id)


def _answer_parts(allow: bool, prov: Provenance, request_id: str | None) -> dict[str, Any]:
    return {"allow": allow, "decision": "allow" if allow else "deny", "reason": prov.describe(),
            "provenance": prov.to_dict(), "request_id": request_id}


def _status(args: dict[str, Any], run_id: str, inbox: Inbox) -> dict[str, Any]:
    rid = args.get("request_id")
    req = inbox.get(rid) if isinstance(rid, str) else None
    if req is None or req.run_id != run_id:  # another run's request does not exist for this one
        raise Failure(ErrorCode.UNKNOWN_REQUEST, f'no request "{printable(str(rid), 40)}" from this run')
    out: dict[str, Any] = {"request_id": req.id, "state": req.state, "kind": req.kind,
                           "subject": req.subject, "summary": req.summary(addresses=False),
                           "age": req.age()}
    if req.provenance is not None:
        out["reason"] = req.provenance.describe()
        out["allow"] = req.allowed
    return out


async def start_agent_server(
    path: str | os.PathLike[str], run_id: str, profile: str, inbox: Inbox,
    policy_eval: PolicyEval, mode: int = 0o600, *, floods: Admission | None = None,
    max_connections: Callable[[], int] | None = None,
    on_refused: Callable[[], None] | None = None, asks: TokenBucket | None = None,
) -> asyncio.AbstractServer:
    """Bind a run's agent.sock with the reader bound the codec needs. Past max_connections
    open at once (or the daemon's fd budget), a connection is answered and closed; past the
    `asks` rate, an ask is denied at once; past MESSAGES_PER_SECOND, a run's next messages of
    any op wait unread."""
    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await handle_agent_connection(r, w, run_id, profile, inbox, policy_eval, floods, asks,
                                      tickets, messages)

    tickets = ExecTickets()
    messages = TokenBucket(MESSAGES_PER_SECOND, burst=MESSAGE_BURST)
    refusal = encode(error(None, Failure(
        ErrorCode.TOO_MANY_CONNECTIONS, "this run has as many agent.sock connections open as it may; "
        "close one and retry")))
    handler = capped(serve, max_connections or (lambda: DEFAULT_MAX_CONNECTIONS), refusal,
                     on_refused or (lambda: None))
    server = await asyncio.start_unix_server(handler, path=os.fspath(path), limit=AGENT_MAX_LINE)
    os.chmod(path, mode)
    return server
