"""What an approval request is: the bounds a request must keep, its state as it is asked and
decided, and the answers the inbox gives (to the asker, and to the person who decided)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from console.policy import (
    Grant,
    GrantTable,
    Provenance,
    parse_scope,
    subject_too_long,
    ungrantable,
)
from console.policy.grants import WEB_PORTS, covering
from console.policy.parts import CommandPart, ParseError, canonical, command_words
from console.policy.unwrap import expand
from console.protocol import Failure
from console.text import (
    RUN_FLAGS,
    RUN_MARKS,
    cut_by_hook,
    destination,
    printable,
    request_line,
    run_flags,
    shown,
)

KINDS = ("exec", "network", "write", "custom")
DETAIL_MAX_BYTES = 16 * 1024
# What a request shows of a tool's input whole: ph-claude-hook cuts a longer one to a preview
# (inside.DETAIL_BUDGET, the same number), and such a request is never asked (unseen_whole).
CUT_INPUT_BYTES = 12 * 1024
TITLE_MAX_CHARS = 200
# Asked parts one command's grants may hold: a grant is made of each, and every pending
# request is matched, part by part, against every grant on the daemon's loop. An agent's
# `x0|x1|...|x800` (4 KiB) made 800 grants, and a look at what a decision would answer took
# 21 s of the loop per pending request (review s17). Past it, no grant answers the request
# or is made from it: a person is asked every time.
MAX_GRANT_PARTS = 16

EVENT_REQUESTED = "approval.requested"
EVENT_DECIDED = "approval.decided"
EVENT_CANCELLED = "approval.cancelled"
EVENT_REFUSED = "approval.refused"
EVENT_REFUSED_OP = "approval.refused_op"
EVENT_POLICY = "policy.decision"  # decided by rules or grants without a person


# Detail keys only the daemon writes (the gate's own lookup and request line): a request from
# an agent carries its own under "agent's <key>", so no view shows the agent's words as facts.
DAEMON_DETAIL_KEYS = ("host", "port", "addresses", "method", "target")


def agents_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """An agent's detail with the daemon's own keys renamed as the agent's."""
    return {(f"agent's {key}" if key in DAEMON_DETAIL_KEYS else key): value
            for key, value in detail.items()}


def check_request(kind: str, subject: Any, title: Any, detail: Any) -> str | None:
    """Why a request is refused before anything else, or None. Bounds keep a hostile agent
    from filling the inbox, the store or a person's screen."""
    if kind not in KINDS:
        return f'unknown request kind "{str(kind)[:40]}": use {", ".join(KINDS)}'
    if not isinstance(subject, str) or not subject.strip():
        return "a request needs a subject (the command, host:port, path or title)"
    if too_long := subject_too_long(subject):
        return too_long
    if title is not None and (not isinstance(title, str) or len(title) > TITLE_MAX_CHARS):
        return f"the title must be text of at most {TITLE_MAX_CHARS} characters"
    if detail is not None and not isinstance(detail, dict):
        return "detail must be an object"
    for key in RUN_FLAGS:  # the card's own sentence when true: never a value of the agent's
        if detail and key in detail and (detail[key] is not True or kind != "exec"):
            return f"detail's {key} must be true, and only in an exec request"
    try:
        size = len(json.dumps(detail or {}, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError):
        return "detail must be plain JSON"
    if size > DETAIL_MAX_BYTES:
        return f"detail is {size} bytes as JSON; at most {DETAIL_MAX_BYTES}"
    return None


def unseen_whole(detail: dict[str, Any]) -> str | None:
    """Why a request is never put to a person, or None: the hook cut the tool's input to fit a
    request (text.cut_by_hook), so every view shows its start only and a yes would approve the
    rest unseen; the agent chose what the start shows (review s31, helper 105: a 27 KB Write
    whose last line ran `curl | sh` was approved after its first 2,000 characters). A rule or
    a grant may still decide it; only the question is refused."""
    tool_input = detail.get("tool_input")
    if not isinstance(tool_input, dict) or not cut_by_hook(tool_input):
        return None
    size = detail.get("input_bytes")
    said = f"{size} bytes as JSON" if isinstance(size, int) and not isinstance(size, bool) else "too long"
    return (f"the tool's input ({said}) is larger than a person can be shown whole in a "
            f"request; make the change in smaller parts (each under {CUT_INPUT_BYTES // 1024} KiB), or "
            "ask the person to allow writes to its folder with a grant or an allow rule")


@dataclass(eq=False)
class Request:
    id: str
    run_id: str
    profile: str
    kind: str
    subject: str
    title: str
    detail: dict[str, Any]
    created_at: float
    rule_provenance: Provenance | None = None
    grant_patterns: tuple[str, ...] = ()
    state: str = "recording"  # recording -> pending -> allowed | denied | timeout | cancelled
    provenance: Provenance | None = None
    decided_by: str | None = None
    decided_at: float | None = None
    scope: str | None = None
    timeout_s: float | None = None  # when it is denied unanswered, from created_at
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def allowed(self) -> bool:
        return self.state == "allowed"

    @property
    def too_many_parts(self) -> bool:
        """More asked parts than grants may hold (MAX_GRANT_PARTS): no grant answers it."""
        return len(self.grant_patterns) > MAX_GRANT_PARTS

    def own_grant_patterns(self) -> list[str]:
        """The parts of it an answer with a wider scope makes exact grants of: of a command,
        not those no grant can ever cover (policy.ungrantable: a substitution or an expansion,
        a here-document, a script piped into a program)."""
        if self.kind != "exec":
            return list(self.grant_patterns)
        blocked = ungrantable(self.subject)
        return [p for p in self.grant_patterns if blocked is not None and p not in blocked]

    def own_grant_parts(self) -> list[tuple[str, str | None]]:
        """own_grant_patterns, each with the line's `cd`s before it as written (the agent's, the
        hook's own `cd CWD &&`): an exact grant covers the command after them only (review s31,
        helpers 110, 111: `make` approved after `cd src &&` allowed `make` at the top)."""
        patterns = self.own_grant_patterns()
        if self.kind != "exec" or not patterns:
            return [(p, None) for p in patterns]
        # (a part of redirections only, `> F` of `cat &>F`, runs nothing: no grant of its own)
        return list(dict.fromkeys((canonical(part), part.cd_context) for part in _top_parts(self.subject)
                                  if canonical(part) in patterns and command_words(part)))

    def why_no_grants(self, pattern: str | None) -> str | None:
        """Why deciding this request without a typed pattern makes no grant; None when it
        makes them."""
        if pattern:
            return None
        if self.too_many_parts:
            return (f"the command has {len(self.grant_patterns)} parts a person is asked about, "
                    f"more than the {MAX_GRANT_PARTS} one decision may make grants or rules of; "
                    "it is asked every time")
        return None if self.grant_patterns else "the command could not be split into rules"

    def age(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.created_at)

    def summary(self, limit: int = 100, *, addresses: bool = True) -> str:
        """What will run (or connect), escaped; the agent's title only beside it, marked.
        Without `addresses`, a network request's resolved addresses are left out: the line
        agent.sock's `status` gives the sandbox, which is never told what a name resolved to
        (review s22)."""
        detail = self.detail if addresses else {
            k: v for k, v in self.detail.items() if k != "addresses"}
        line = request_line({"kind": self.kind, "subject": self.subject, "title": self.title,
                             "detail": detail}, max(20, limit - len(self.kind) - 1))
        return f"{self.kind} {line}"

    def closed_message(self) -> str:
        at = time.strftime("%H:%M:%S", time.localtime(self.decided_at or self.created_at))
        if self.state in ("allowed", "denied") and self.decided_by:
            verb = "allowed" if self.allowed else "denied"
            return f"request {self.id} was already decided by {self.decided_by} at {at} ({verb})"
        why = self.provenance.describe() if self.provenance else self.state
        return f"request {self.id} was already closed at {at}: {why}"

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        return {
            "id": self.id, "run_id": self.run_id, "profile": self.profile, "kind": self.kind,
            "subject": self.subject, "title": self.title, "detail": self.detail,
            "summary": self.summary(), "created_at": self.created_at, "age": self.age(now),
            "state": self.state,
            "rule_provenance": self.rule_provenance.to_dict() if self.rule_provenance else None,
            "provenance": self.provenance.to_dict() if self.provenance else None,
            "decided_by": self.decided_by, "decided_at": self.decided_at, "scope": self.scope,
            "expires_at": self.created_at + self.timeout_s if self.timeout_s else None,
        }


@dataclass(frozen=True)
class Outcome:
    allow: bool
    provenance: Provenance
    request_id: str | None = None

    @property
    def reason(self) -> str:
        return self.provenance.describe()


@dataclass(frozen=True)
class DecisionResult:
    request_id: str
    allow: bool
    actor: str
    scope: str
    decided_at: float
    provenance: Provenance
    grants: tuple[Grant, ...] = ()
    note: str = ""  # e.g. why a wider scope made no grant
    also_decided: tuple[str, ...] = ()  # other pending requests the new grants answered


class ProfileLookup:
    """What the inbox reads of a request's profile: its approval timeout, and the ports a
    network grant without one covers (review s31, helper 110: the inbox answered a pending
    `host:80` with a port-less grant the gate reads as the profile's `ports = [443]`)."""

    def __init__(self, profile_of: Callable[[str], Any] | None, timeout_s: float) -> None:
        self._profile_of, self._timeout_s = profile_of, timeout_s

    def _get(self, name: str, attribute: Callable[[Any], Any], default: Any) -> Any:
        try:
            return attribute(self._profile_of(name)) if self._profile_of else default
        except Exception:  # an unknown profile keeps the inbox's own
            return default

    def timeout(self, name: str) -> float:
        return float(self._get(name, lambda p: p.approval_timeout, self._timeout_s))

    def ports(self, name: str) -> tuple[int, ...]:
        return tuple(self._get(name, lambda p: p.network.ports, WEB_PORTS))


def answering_grant(table: GrantTable, req: Request, now: float,
                    profiles: ProfileLookup | None = None) -> Grant | None:
    """The grant that would answer a pending request without asking: a deny grant on any of its
    parts, else allow grants on every part (the first is named); None when a person must. A
    command's parts are read in their line, as the hook's next ask would read them (review
    s31, helper 110: `python3 -q` read alone answered `cat evil.py | python3 -q`)."""
    if not req.grant_patterns or req.too_many_parts:
        return None
    if req.kind == "exec":
        return _answering_exec_grant(table, req, now)
    ports = profiles.ports(req.profile) if profiles else WEB_PORTS
    found = [table.match(req.kind, p, req.run_id, req.profile, now, consume=False, ports=ports)
             for p in req.grant_patterns]
    dialled = [table.match(req.kind, a, req.run_id, req.profile, now, consume=False, ports=ports)
               for a in _dialled(req)]  # a deny grant on an address it resolved to
    deny = next((g for g in [*found, *dialled] if g and g.effect == "deny"), None)
    if deny is not None:
        return deny
    return found[0] if all(g and g.effect == "allow" for g in found) else None


def _dialled(req: Request) -> list[str]:
    """A network request's addresses as `address:port`, which the gate checks deny grants
    against (review s31, helper 111: a deny of 127.0.0.9:443 did not stop the inbox answering
    a name that resolves there)."""
    addresses = req.detail.get("addresses") if req.kind == "network" else None
    port = req.subject.rpartition(":")[2]
    if not isinstance(addresses, list) or not port.isdigit():
        return []
    return [destination(a, port) for a in addresses[:16]]


def _top_parts(command: str) -> list[CommandPart]:
    try:
        return [p for p in expand(command) if not p.nested]
    except ParseError:
        return []


def _answering_exec_grant(table: GrantTable, req: Request, now: float) -> Grant | None:
    live = table.live("exec", req.run_id, req.profile, now)
    try:
        parts = expand(req.subject)
    except ParseError:
        return None
    deny = next((g for part in parts if (g := covering(live, "deny", part))), None)
    if deny is not None:
        return deny
    asked = [p for p in parts if not p.nested and canonical(p) in req.grant_patterns]
    found = [covering(live, "allow", p) for p in asked]
    return found[0] if found and all(found) else None


def refusal_data(run_id: str, profile: str, kind: Any, subject: Any,
                 prov: Provenance) -> dict[str, Any]:
    """The record of an ask refused without being decided (its sizes bounded: it is the
    agent's input)."""
    return {"run_id": run_id, "profile": profile, "kind": str(kind)[:40],
            "subject": printable(str(subject), 200), "provenance": prov.to_dict()}


def event_text(event: str, data: dict[str, Any]) -> str:
    """The one-line text of an inbox event, for the history view."""
    marks = "".join(RUN_MARKS[key] + " " for key in run_flags(data))  # how it runs, first
    # Escaped as every view of a request is: blanks counted, a cut saying how much it cut (a
    # bare `…` after 90 blanks recorded `pytest -q` for an allowed `pytest -q ... | sh`: h162)
    what = marks + shown(f"{data.get('kind', '')} {data.get('subject', '')}", 100)
    rid = f" ({data['id']})" if data.get("id") else ""
    prov = data.get("provenance") or {}
    why = f": {prov.get('text')}" if prov.get("text") else ""
    run = data.get("run_id", "?")
    if event == EVENT_REQUESTED:
        return f"run {run} asks: {what}{rid}"
    if event in (EVENT_DECIDED, EVENT_POLICY):
        allowed = data.get("allow", data.get("action") == "allow")
        return f"{'allowed' if allowed else 'denied'} {what}{rid} for run {run}{why}"
    if event == EVENT_CANCELLED:
        return f"closed {what}{rid} for run {run}{why}"
    if event == EVENT_REFUSED_OP:
        return f"run {run} tried op {data.get('op')!r} on agent.sock: refused"
    return f"refused {what} for run {run}{why}"


def parse_scope_arg(scope: str) -> Any:
    """A scope word from a decider, as a Scope; Failure "bad-scope" if it is none."""
    try:
        return parse_scope(scope)
    except ValueError as exc:
        raise Failure("bad-scope", str(exc)) from None

