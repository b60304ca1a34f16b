"""The operations served on operator.sock, one function each, registered by name.

Each handler gets the daemon, the peer (from SO_PEERCRED) and the request's args, and returns
a JSON-able result or raises Failure. Streaming handlers push events through `send` before
returning their final result. docs/protocol.md lists them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from console import protocol
from console.protocol import Failure

if TYPE_CHECKING:
    from console.daemon.peers import Peer
    from console.daemon.server import Daemon

log = logging.getLogger("pilothouse.ops")
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[["Daemon", "Peer", dict[str, Any], Send], Awaitable[Any]]


@dataclass(frozen=True)
class Op:
    handler: Handler
    decides: bool  # changes state: only operators and approvers


OPS: dict[str, Op] = {}
LOG_PAGE = 1000  # output lines per read and per event when replaying a run's log


def op(name: str, *, decides: bool = False) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        OPS[name] = Op(fn, decides)
        return fn

    return register


async def dispatch(daemon: Daemon, peer: Peer, name: str, args: dict[str, Any], send: Send) -> Any:
    entry = OPS.get(name)
    if entry is None:
        raise Failure("unknown-op", f"unknown operation {name!r}", "see docs/protocol.md")
    if entry.decides and daemon.stopping and name != "daemon.stop":
        raise Failure("stopping", f"the daemon is stopping; {name} was not done",
                      "start it again (pilothouse daemon) once it has stopped")
    if entry.decides and not peer.may_decide:
        await daemon.services.record_security(
            "operator.denied_op", actor=peer.user,
            text=f"{peer.user} ({peer.role}) tried {name}", data={"op": name, "role": peer.role},
        )
        raise Failure(
            "not-allowed",
            f"{peer.user} may watch but not {name} (role: {peer.role})",
            "ask the owner to list you in [team] approvers",
        )
    return await entry.handler(daemon, peer, args, send)


def _arg(args: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if name not in args or args[name] is None:
        if default is ...:
            raise Failure("bad-args", f"missing argument {name!r}")
        return default
    value = args[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise Failure("bad-args", f"argument {name!r} has the wrong type")
    return value


# --- daemon ------------------------------------------------------------------------------------


@op("hello")
async def hello(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    from console.daemon.server import VERSION

    return {
        "daemon": VERSION, "protocol": protocol.VERSION, "pid": os.getpid(),
        "user": peer.user, "role": peer.role, "home": str(daemon.paths.runtime_dir.parent),
        "uptime_s": round(time.time() - daemon.started_at, 1), "config_files": daemon.cfg.files,
        "config_error": daemon.reloader.error if daemon.reloader else None,
        "config_file": daemon.cfg.user_file,  # where its rules come from (may not exist yet)
    }


@op("daemon.stop", decides=True)
async def daemon_stop(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    """Always stops: new work is refused from here on, and a store that cannot record the
    request (full, locked) is logged, not a reason to keep running."""
    from store import StoreError

    daemon.stopping = True
    recorded = True
    try:
        await daemon.services.writer.acommit(
            "daemon.stop", actor=peer.user, text=f"stop requested by {peer.user}", timeout=10)
    except StoreError as exc:
        recorded = False
        log.error("daemon stop by %s not recorded (stopping anyway): %s", peer.user, exc)
    asyncio.get_running_loop().call_later(0.05, daemon.request_stop)
    return {"stopping": True, "recorded": recorded}


@op("config.reload", decides=True)
async def config_reload(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    from console.config.load import ConfigError

    try:
        return await daemon.reloader.reload(peer.user, "reload")
    except ConfigError as exc:
        raise Failure("bad-config", str(exc), "fix the file; the old config stays in force") from None


@op("profiles")
async def profiles(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    return [
        {"name": p.name, "command": p.command, "sandbox": p.sandbox, "image": p.image,
         "description": p.description, "source": p.source, "env": p.env}
        for p in sorted(daemon.cfg.profiles.values(), key=lambda p: p.name)
    ]


# --- runs --------------------------------------------------------------------------------------


def _run_row(daemon: Daemon, run: Any) -> dict[str, Any]:
    row = run.public()
    row["stats"] = daemon.runs.stats(run.id)
    row["uptime_s"] = round(time.time() - run.started_at, 1)
    return row


@op("runs.list")
async def runs_list(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    live = [_run_row(daemon, r) for r in daemon.runs.live()]
    if not _arg(args, "all", bool, False):
        return live
    from store import history

    ended = await daemon.services.read(lambda db: history.query_runs(db, limit=_arg(args, "limit", int, 50)))
    seen = {r["id"] for r in live}
    return live + [r for r in ended if r["id"] not in seen]


@op("run.start", decides=True)
async def run_start(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    command = _arg(args, "command", list, None)
    if command is not None and not all(isinstance(c, str) for c in command):
        raise Failure("bad-args", "command must be a list of strings")
    run = await daemon.runs.start(
        _arg(args, "profile", str),
        actor=peer.user,
        workspace=_arg(args, "workspace", str, None),
        command=command or None,
        client_cwd=_arg(args, "cwd", str, None),
        requester=(peer.uid, peer.gid),
        caller_env=_caller_env(_arg(args, "env", dict, None)),
    )
    return run.public()


def _caller_env(env: dict[str, Any] | None) -> dict[str, str] | None:
    """The values of the profile's `env` names in the caller's shell, as `pilothouse run` sent them."""
    if env is None:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise Failure("bad-args", "env must map variable names to text")
    return env


@op("run.stop", decides=True)
async def run_stop(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    run_id = _arg(args, "run", str)
    run = await daemon.runs.stop(run_id, actor=peer.user, kill=_arg(args, "kill", bool, False))
    return run.public()


@op("run.get")
async def run_get(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    run_id = _arg(args, "run", str)
    if run_id in daemon.runs.runs:
        return _run_row(daemon, daemon.runs.runs[run_id])
    from store import history

    row = await daemon.services.read(lambda db: history.get_run(db, run_id))
    if row is None:
        raise Failure("no-such-run", f"no run {run_id!r}", "list runs with: pilothouse ps --all")
    return row


@op("logs")
async def logs(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    """Past output (from the store), then, with follow, live lines until the run ends."""
    from store import history

    run_id = _arg(args, "run", str)
    follow = _arg(args, "follow", bool, False)
    tail = _arg(args, "tail", int, 0)
    search = _arg(args, "search", str, None)
    sub = (daemon.bus.subscribe(("run.output", "run.state"), run_id=run_id)
           if follow and not search else None)

    async def send_lines(rows: list[dict[str, Any]]) -> None:
        await send(protocol.event({"kind": "run.output", "run_id": run_id,
                                   "lines": [r["line"] for r in rows]}))

    try:
        await daemon.services.flush()
        sent = 0
        if tail:
            rows = await daemon.services.read(
                lambda db: history.query_output(db, run_id, limit=tail, search=search))
            for start in range(0, len(rows), LOG_PAGE):
                await send_lines(rows[start : start + LOG_PAGE])
            sent = len(rows)
            seen = await daemon.services.read(lambda db: history.count_output(db, run_id))
        else:
            # Page through the store: a long run's output never sits in memory whole.
            after = 0
            while rows := await daemon.services.read(
                    lambda db, after=after: history.query_output(
                        db, run_id, after_id=after, limit=LOG_PAGE, search=search)):
                await send_lines(rows)
                sent += len(rows)
                after = rows[-1]["id"]
            seen = sent
        if sub is None or run_id not in daemon.runs.runs:
            return {"run": run_id, "lines": sent}
        while True:
            event = await sub.get()
            if event["kind"] == "run.output":
                # The subscription started before the store was read: skip lines already sent.
                if event["first"] < seen:
                    event = {**event, "first": seen, "lines": event["lines"][seen - event["first"] :]}
                    if not event["lines"]:
                        continue
                await send(protocol.event(event))
            elif event["kind"] == "run.state" and event["run"]["state"] not in ("starting", "running", "stopping"):
                return {"run": run_id, "state": event["run"]["state"], "exit_code": event["run"]["exit_code"]}
            elif event["kind"] == "bus.dropped":
                await send(protocol.event(event))
    finally:
        if sub is not None:
            daemon.bus.unsubscribe(sub)


@op("subscribe")
async def subscribe(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    """Events until the connection closes. topics: run, approval, net, gpu, daemon, ... or *."""
    topics = _arg(args, "topics", list, ["*"])
    sub = daemon.bus.subscribe(topics, run_id=_arg(args, "run", str, None))
    await send(protocol.event({"kind": "subscribed", "topics": topics}))
    try:
        while True:
            await send(protocol.event(await sub.get()))
    finally:
        daemon.bus.unsubscribe(sub)


# --- history -----------------------------------------------------------------------------------


def _filters(args: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": _arg(args, "run", str, None),
        "kind": _arg(args, "kind", str, None),
        "search": _arg(args, "search", str, None),
        "since": _arg(args, "since", (int, float), None),
        "until": _arg(args, "until", (int, float), None),
        "decision": _arg(args, "decision", str, None),
    }


@op("history")
async def history_op(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    from store import history

    f = _filters(args)
    limit = min(_arg(args, "limit", int, 100), 5000)
    before = _arg(args, "before_id", int, None)
    await daemon.services.flush()
    try:
        return await daemon.services.read(
            lambda db: history.query_events(db, before_id=before, limit=limit, **f)
        )
    except ValueError as exc:
        raise Failure("bad-args", str(exc)) from None


@op("export")
async def export_op(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    """Streams matching events oldest first as events of kind export.rows, 1000 at a time."""
    from store import history

    f = _filters(args)
    await daemon.services.flush()
    total = 0
    after: int | None = None
    while True:
        batch = await daemon.services.read(
            lambda db, after=after: history.query_events_after(db, after_id=after, limit=1000, **f)
        )
        if not batch:
            return {"rows": total}
        total += len(batch)
        after = batch[-1]["id"]
        await send(protocol.event({"kind": "export.rows", "rows": batch}))


@op("audit.verify")
async def audit_verify(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    from store import audit

    await daemon.services.flush()
    result = await daemon.services.read(lambda db: audit.verify(
        db, daemon.services.key, witness=daemon.services.witness_file))
    return result.as_dict()


@op("prune", decides=True)
async def prune(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    """Prune is the owner's act (an approver only with [limits] approvers_may_prune), and
    history younger than prune_confirm_age needs confirm=true (`--yes`)."""
    older = _arg(args, "older_than_s", (int, float))
    if older <= 0:
        raise Failure("bad-args", "older_than must be more than zero")
    bounds = daemon.cfg.bounds
    if peer.role != "operator" and not bounds.approvers_may_prune:
        await daemon.services.record_security(
            "operator.denied_op", actor=peer.user, text=f"{peer.user} ({peer.role}) tried prune",
            data={"op": "prune", "role": peer.role, "older_than_s": older})
        raise Failure("not-allowed", f"{peer.user} may not prune the history (role: "
                      f"{peer.role}); only the daemon's owner may",
                      "ask the owner, or set approvers_may_prune = true under [limits]")
    if older < bounds.prune_confirm_age and not _arg(args, "confirm", bool, False):
        days = bounds.prune_confirm_age / 86400
        raise Failure("confirm", f"pruning history younger than {days:g} days deletes recent "
                      "evidence", "run it again with --yes to confirm")
    await daemon.services.record_security(
        "store.prune", actor=peer.user, text=f"prune of events older than {older:.0f}s by {peer.user}",
        data={"older_than_s": older, "by": peer.user, "role": peer.role,
              "confirmed": bool(args.get("confirm"))},
    )
    result = await daemon.services.prune(time.time() - older)
    return result


# --- GPU and reports ---------------------------------------------------------------------------


@op("gpu")
async def gpu(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    return daemon.services.gpu.snapshot()


@op("report")
async def report(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    """One run: its record, tokens, energy and cost, and counts of its approvals and network."""

    run_id = _arg(args, "run", str)
    await daemon.services.flush()
    run = await run_get(daemon, peer, {"run": run_id}, send)
    metering = await daemon.services.gpu.areport(run_id)

    def counts(db: Any) -> dict[str, Any]:
        rows = db.execute(
            "SELECT kind, json_extract(data, '$.action'), json_extract(data, '$.allow'), count(*) "
            "FROM events WHERE run_id = ? AND kind IN ('approval.requested', 'approval.decided', "
            "'policy.decision', 'net.decision', 'net.closed') GROUP BY 1, 2, 3", (run_id,),
        ).fetchall()
        out: dict[str, Any] = {"approvals_asked": 0, "approved": 0, "denied_by_person": 0,
                               "policy_allowed": 0, "policy_denied": 0, "net": {}}
        for kind, action, allow, n in rows:
            if kind == "approval.requested":
                out["approvals_asked"] += n
            elif kind == "approval.decided":
                out["approved" if allow else "denied_by_person"] += n
            elif kind == "policy.decision":
                out["policy_allowed" if action == "allow" else "policy_denied"] += n
            elif kind == "net.decision":
                out["net"][action or "?"] = out["net"].get(action or "?", 0) + n
        out["connections"] = db.execute(
            "SELECT count(*), coalesce(sum(json_extract(data, '$.bytes_up')), 0), "
            "coalesce(sum(json_extract(data, '$.bytes_down')), 0) FROM events "
            "WHERE run_id = ? AND kind = 'net.closed'", (run_id,)).fetchone()
        return out

    activity = await daemon.services.read(counts)
    n, up, down = activity.pop("connections")
    activity["connections"] = {"count": n, "bytes_up": up, "bytes_down": down}
    return {"run": run, "metering": metering, "activity": activity}
