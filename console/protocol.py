"""The wire format of both sockets: JSON lines, versioned, bounded.

One message per line, UTF-8 JSON objects. Three shapes:

    request   {"v": 1, "id": 7, "op": "run.start", "args": {...}}
    response  {"v": 1, "id": 7, "ok": true, "result": {...}}
              {"v": 1, "id": 7, "ok": false, "error": {"code": "...", "message": "...", "hint": "..."}}
    event     {"v": 1, "event": {"kind": "...", ...}}      (only after a subscribe request)

docs/protocol.md lists the operations. Lines longer than the reader's bound are refused
without being buffered whole: inputs from inside a sandbox are hostile.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum

TYPE_CHECKING = False  # typing's, without importing typing: every CLI start would pay for it
if TYPE_CHECKING:
    import asyncio
    from typing import Any

VERSION = 1
OPERATOR_MAX_LINE = 4 * 1024 * 1024
AGENT_MAX_LINE = 64 * 1024
MAX_BLANK_LINES = 64  # in a row; a client never needs more than one

# Run, request and grant ids: no 0/o, 1/l/i, since ids are read aloud and typed.
ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
# A run in one of these states has a process (or is about to, or is stopping it).
LIVE_STATES = ("starting", "running", "stopping")


def new_id(length: int) -> str:
    """A random id of `length` characters from ID_ALPHABET (callers check it is unused)."""
    import secrets  # here, not at the top: it costs a CLI start more than it saves

    return "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


class ProtocolError(Exception):
    """A peer sent something that is not a valid message."""


class MessageRefused(ProtocolError):
    """Input no client sends by mistake (too long, too deep, a flood of blank lines): answered
    once, then the connection is closed."""


class MessageTooLong(MessageRefused):
    """A line over the bound: the stream cannot be resynchronised, so the connection ends."""


class ErrorCode(StrEnum):
    """Every error code either socket sends, spelled one way (docs/protocol.md lists them)."""

    ALREADY_DECIDED = "already-decided"
    BAD_ARGS = "bad-args"
    BAD_CONFIG = "bad-config"
    BAD_MESSAGE = "bad-message"
    BAD_PATTERN = "bad-pattern"
    BAD_REQUEST = "bad-request"
    BAD_RULE = "bad-rule"
    BAD_SCOPE = "bad-scope"
    BAD_WORKSPACE = "bad-workspace"
    BUSY = "busy"
    CANNOT_SAVE_RULE = "cannot-save-rule"
    CONFIRM = "confirm"
    INTERNAL = "internal"
    NO_ACTOR = "no-actor"
    NO_RULE = "no-rule"
    NO_SANDBOX = "no-sandbox"
    NO_SUCH_PROFILE = "no-such-profile"
    NO_SUCH_RUN = "no-such-run"
    NOT_ALLOWED = "not-allowed"
    RECORD_FAILED = "record-failed"
    REFUSED_OP = "refused-op"
    RULE_OVERRIDDEN = "rule-overridden"
    SANDBOX_FAILED = "sandbox-failed"
    STOPPING = "stopping"
    TOO_MANY_CONNECTIONS = "too-many-connections"
    UNKNOWN_GRANT = "unknown-grant"
    UNKNOWN_OP = "unknown-op"
    UNKNOWN_REQUEST = "unknown-request"


class EventKind(StrEnum):
    """Every kind of event the store records (docs/protocol.md): one name, one shape each."""

    APPROVAL_CANCELLED = "approval.cancelled"
    APPROVAL_DECIDED = "approval.decided"
    APPROVAL_REFUSED = "approval.refused"
    APPROVAL_REFUSED_OP = "approval.refused_op"
    APPROVAL_REQUESTED = "approval.requested"
    DAEMON_STARTED = "daemon.started"
    DAEMON_STOP = "daemon.stop"
    DAEMON_STOPPED = "daemon.stopped"
    GPU_SAMPLE = "gpu.sample"
    GPU_STATUS = "gpu.status"
    GRANT_REVOKED = "grant.revoked"
    NET_CLOSED = "net.closed"
    NET_DECISION = "net.decision"
    NET_ERROR = "net.error"
    NET_REJECTED = "net.rejected"
    NET_SNI_MISMATCH = "net.sni_mismatch"
    OPERATOR_DENIED_OP = "operator.denied_op"
    OPERATOR_REFUSED = "operator.refused"
    POLICY_CHANGED = "policy.changed"  # {cause, files, diff, ...}: reloads and saved profile rules
    POLICY_DECISION = "policy.decision"
    RUN_ENDED = "run.ended"
    RUN_KILL = "run.kill"
    RUN_LOST = "run.lost"
    RUN_STARTED = "run.started"
    LIMITS_REFUSED = "limits.refused"
    SANDBOX_FINDING = "sandbox.finding"
    SANDBOX_ORPHANS_REMOVED = "sandbox.orphans_removed"
    STORE_CHAIN_WARNING = "store.chain_warning"
    STORE_DROPPED = "store.dropped"
    STORE_PRUNE = "store.prune"
    STORE_PRUNED = "store.pruned"
    STORE_ROLLBACK_DETECTED = "store.rollback_detected"
    STORE_THROTTLED = "store.throttled"
    STORE_WRITE_FAILED = "store.write_failed"
    TOKENS = "tokens"


class Topic(StrEnum):
    """What a subscriber asks the bus for: the part of an event's kind before the first dot.
    (A subscriber may also name one exact kind, e.g. "run.state", or "*" for all.)"""

    APPROVAL = "approval"  # approval.requested, approval.resolved (the inbox)
    BUS = "bus"  # bus.dropped: this subscriber fell behind and lost that many events
    GPU = "gpu"  # gpu.sample (the GPU service)
    INFERENCE = "inference"  # inference.start, inference.end (the gate's trace recorder)
    NET = "net"  # net.decision, net.closed, net.rejected, net.error, net.sni_mismatch (gates)
    RUN = "run"  # run.state, run.output (the run manager)
    TOKENS = "tokens"  # tokens: one metered inference call (gates)


def topic_of(kind: str) -> str:
    return kind.split(".", 1)[0]


class Failure(Exception):
    """An expected failure, sent to the peer as an error response (never a traceback).

    A plain class, not a dataclass: every CLI start imports this module, and dataclasses
    brings inspect (a few milliseconds of each start)."""

    def __init__(self, code: str, message: str, hint: str = "",
                 data: dict[str, Any] | None = None) -> None:
        super().__init__(code, message, hint, data)
        # One spelling on the wire, whichever a caller wrote (`bad_message` is `bad-message`).
        spelled = str(code).replace("_", "-")
        self.code: str = ErrorCode(spelled) if spelled in ErrorCode._value2member_map_ else spelled
        self.message = message
        self.hint = hint
        self.data: dict[str, Any] = {} if data is None else data

    def __repr__(self) -> str:
        return (f"Failure(code={self.code!r}, message={self.message!r}, hint={self.hint!r}, "
                f"data={self.data!r})")

    def __str__(self) -> str:
        return self.message

    def to_wire(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.hint:
            err["hint"] = self.hint
        if self.data:
            err["data"] = self.data
        return err


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def request(req_id: int, op: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"v": VERSION, "id": req_id, "op": op, "args": args or {}}


def ok(req_id: Any, result: Any = None) -> dict[str, Any]:
    return {"v": VERSION, "id": req_id, "ok": True, "result": result}


def error(req_id: Any, failure: Failure) -> dict[str, Any]:
    return {"v": VERSION, "id": req_id, "ok": False, "error": failure.to_wire()}


def event(payload: dict[str, Any]) -> dict[str, Any]:
    return {"v": VERSION, "event": payload}


# A \\uD800-\\uDFFF escape: JSON allows one unpaired, but it is no UTF-8 text, and every
# answer that carried it (approvals.list with the request in it) would fail to encode.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def decode(line: bytes) -> dict[str, Any]:
    try:
        msg = json.loads(line)
        if _SURROGATE_ESCAPE.search(line):
            encode(msg)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    except UnicodeEncodeError:
        raise ProtocolError("not UTF-8 text: a string holds an unpaired surrogate escape "
                            "(\\ud800-\\udfff)") from None
    except RecursionError:
        raise MessageRefused("JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer past Python's digit limit
        raise MessageRefused(f"JSON value out of range: {str(exc)[:120]}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("a message must be a JSON object")
    if msg.get("v") != VERSION:
        raise ProtocolError(f"unsupported protocol version {msg.get('v')!r}; this side speaks {VERSION}")
    return msg


def parse_request(msg: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
    req_id = msg.get("id")
    op = msg.get("op")
    args = msg.get("args", {})
    if not isinstance(op, str) or not op:
        raise ProtocolError("a request needs an 'op' string")
    if not isinstance(args, dict):
        raise ProtocolError("'args' must be an object")
    if req_id is not None and not isinstance(req_id, int | str):
        raise ProtocolError("'id' must be a number or a string")
    return req_id, op, args


async def read_message(reader: asyncio.StreamReader, max_line: int) -> dict[str, Any] | None:
    """Read one message; None at end of stream. Raises ProtocolError on oversize or bad JSON.

    The StreamReader's own limit must be at least max_line (see open_limits)."""
    import asyncio  # here, so the blocking CLI client does not import asyncio at start
    for _ in range(MAX_BLANK_LINES + 1):
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial.strip():
                return None
            line = exc.partial
        except asyncio.LimitOverrunError:
            raise MessageTooLong(f"message longer than {max_line} bytes") from None
        if len(line) > max_line:
            raise MessageTooLong(f"message longer than {max_line} bytes")
        if line.strip():
            return decode(line)
    raise MessageRefused(f"more than {MAX_BLANK_LINES} blank lines in a row")
