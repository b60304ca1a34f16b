"""The words of the wire: every error code, event kind and topic, spelled one way, the
Failure an operation raises to answer with an error, and the ids runs and requests get.

console.wire frames the messages (JSON lines, versioned, bounded); docs/protocol.md lists
the operations.
"""

from __future__ import annotations

from enum import StrEnum

TYPE_CHECKING = False  # typing's, without importing typing
if TYPE_CHECKING:
    from typing import Any

# Run, request and grant ids: no 0/o, 1/l/i, since ids are read aloud and typed.
ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
# A run in one of these states has a process (or is about to, or is stopping it).
LIVE_STATES = ("starting", "running", "stopping")
# The most runs one `runs.list` answers (docs/protocol.md): any watcher may ask, and each is a
# row read and serialized on the daemon.
RUNS_LIST_MAX = 1000
# Grant scopes that outlive the run and the while: a rule saved to the owner's config, a grant
# over every run. The daemon owner's alone to make and to revoke (reviews h179, h183). Here, not
# in console.policy, so the CLI and the console can tell without loading the policy package.
STANDING_SCOPES = ("profile", "global")


def unrunnable(command: list[str]) -> bool:
    """No program can be run from these words: the first names nothing, or one holds a NUL
    (execve ends a word there, so what ran would not be what was shown). A profile's command
    and a run.start's are refused on this one rule."""
    return not command or not command[0] or any("\0" in word for word in command)


def new_id(length: int) -> str:
    """A random id of `length` characters from ID_ALPHABET (callers check it is unused)."""
    import secrets  # here, not at the top: it costs a CLI start more than it saves

    return "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


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
    STORE_FAILED = "store-failed"
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
    GRANT_ENDED = "grant.ended"
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
    RUN_ENDED = "run.ended"  # {state, exit_code, duration_s, output: the seal (output_seal.py)}
    RUN_KILL = "run.kill"
    RUN_LOST = "run.lost"  # {killed_leftover_pids, output: the seal of what was stored}
    RUN_STARTED = "run.started"
    LIMITS_REFUSED = "limits.refused"
    SANDBOX_FINDING = "sandbox.finding"
    SANDBOX_ORPHANS_REMOVED = "sandbox.orphans_removed"
    STORE_CHAIN_WARNING = "store.chain_warning"
    STORE_INDEX_REBUILT = "store.index_rebuilt"
    STORE_DROPPED = "store.dropped"
    STORE_PRUNE = "store.prune"
    STORE_PRUNED = "store.pruned"
    STORE_ROLLBACK_DETECTED = "store.rollback_detected"
    STORE_THROTTLED = "store.throttled"
    STORE_UNCONFIRMED = "store.unconfirmed"  # {event_id, event_kind, waited_s}: landed unwaited
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
