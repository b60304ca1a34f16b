"""Runs: list, start, stop, one run's record, and its output (past, then live)."""

from __future__ import annotations

import time
from itertools import groupby
from typing import Any

from console import wire
from console.daemon.core import Core
from console.daemon.ops.base import Args, Op, OpTable, Send, arg
from console.daemon.output_pump import line_batches
from console.daemon.peers import Peer
from console.daemon.runs import Run
from console.protocol import LIVE_STATES, RUNS_LIST_MAX, Failure, unrunnable
from store import history
from store.integrity import one_snapshot, runs_off_each
from store.output_seal import output_dropped

COMMAND_MAX_BYTES = 256 * 1024  # a run's command, kept in its row and shown in every ps
LOG_PAGE = 1000  # output lines per read and per event when replaying a run's log


def _run_row(core: Core, run: Run) -> dict[str, Any]:
    row = run.public()
    row["stats"] = core.runs.stats(run.id)
    row["uptime_s"] = round(time.time() - run.started_at, 1)
    return row


async def runs_list(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    # A live run is shown from the daemon's own record, not from the file's row.
    live = [{**_run_row(core, r), "warning": None} for r in core.runs.live()]
    if not arg(args, "all", bool, False):
        return live
    limit = arg(args, "limit", int, 50)
    if limit < 1:
        raise Failure("bad-args", f"limit must be between 1 and {RUNS_LIST_MAX}, not {limit}",
                      f"ask for 1 to {RUNS_LIST_MAX} ended runs (a larger limit gets "
                      f"{RUNS_LIST_MAX})")
    limit = min(limit, RUNS_LIST_MAX)  # any watcher may ask; each row is read and serialized
    seen = {r["id"] for r in live}

    def page(db: Any) -> wire.Encoded:  # in the reader's thread, as history's
        # The rows read from the file are not chained: `warning` says why one is not what its
        # recorded start or end says (the check `report` and `audit verify` make), read in
        # the rows' own snapshot.
        with one_snapshot(db.conn):
            ended = [r for r in history.query_runs(db, limit=limit) if r["id"] not in seen]
            off = runs_off_each(db.conn, [r["id"] for r in ended], live_states=LIVE_STATES)
        for r in ended:
            r["warning"] = off.get(r["id"])
        return wire.Encoded(*wire.fitted(live + ended))

    return await core.store.read(page)


async def run_start(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    command = arg(args, "command", list, None)
    if command is not None and not all(isinstance(c, str) for c in command):
        raise Failure("bad-args", "command must be a list of strings")
    if command and unrunnable(command):
        raise Failure("bad-args", "the command's program is named by nothing, or a word holds "
                      "a NUL byte: no program can be run so", "give the program to run after --")
    if command is not None and (n := sum(len(c.encode("utf-8", "surrogatepass")) for c in command)
                                ) > COMMAND_MAX_BYTES:
        raise Failure("bad-args", f"the command is {n} bytes; a run's command may be at most "
                      f"{COMMAND_MAX_BYTES}", "pass long input in a file in the workspace")
    env = _caller_env(arg(args, "env", dict, None))
    starting = core.life.starting
    if peer.role != "operator":
        _refuse_past_teammate_runs(core, peer)
    starting[peer.uid] = starting.get(peer.uid, 0) + 1
    try:
        run = await core.runs.start(
            arg(args, "profile", str),
            actor=peer.user,
            workspace=arg(args, "workspace", str, None),
            command=command or None,
            client_cwd=arg(args, "cwd", str, None),
            requester=(peer.uid, peer.gid),
            caller_env=env,
        )
    finally:
        if (left := starting.pop(peer.uid) - 1) > 0:
            starting[peer.uid] = left
    return run.public()


def _refuse_past_teammate_runs(core: Core, peer: Peer) -> None:
    """A teammate's live runs (and starts under way) are at most [limits] teammate_runs: each
    holds ~23 of the daemon's descriptors and a sandbox it started, outside the teammate's own
    process limits, and a loop of starts took a root daemon towards its fd limit (review h173)."""
    most = core.config.cfg.bounds.teammate_runs
    held = sum(r.actor == peer.user for r in core.runs.live()) + core.life.starting.get(peer.uid, 0)
    if held >= most:
        raise Failure("busy", f"{peer.user} has {held} runs live or starting, the most a teammate "
                      f"may (limits.teammate_runs = {most})",
                      "stop one (`pilothouse stop ID`), or ask the daemon's owner to raise "
                      "teammate_runs under [limits]")


def _caller_env(env: dict[str, Any] | None) -> dict[str, str] | None:
    """The values of the profile's `env` names in the caller's shell, as `pilothouse run` sent them."""
    if env is None:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise Failure("bad-args", "env must map variable names to text")
    return env


async def run_stop(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    run_id = arg(args, "run", str)
    run, unrecorded = await core.runs.stop(run_id, actor=peer.user,
                                           kill=arg(args, "kill", bool, False))
    # None: not confirmed (store/waits.StoreUncertain), it may yet be recorded; not a False
    recorded = None if getattr(unrecorded, "uncertain", False) else unrecorded is None
    return {**run.public(), "stop_recorded": recorded,
            "unrecorded_because": None if unrecorded is None else str(unrecorded)}


async def run_get(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    run_id = arg(args, "run", str)
    if run_id in core.runs.runs:
        return _run_row(core, core.runs.runs[run_id])
    row = await core.store.read(lambda db: history.get_run(db, run_id))
    if row is None:
        raise _no_such_run(run_id)
    return row


def _no_such_run(run_id: str) -> Failure:
    return Failure("no-such-run", f"no run {run_id!r}", "list runs with: pilothouse ps --all")


async def logs(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    """Past output (from the store), then, with follow, live lines until the run ends."""
    run_id = arg(args, "run", str)
    follow = arg(args, "follow", bool, False)
    tail = arg(args, "tail", int, 0)
    if tail < 0:
        raise Failure("bad-args", f"tail must be 0 (every line) or more, not {tail}")
    search = arg(args, "search", str, None)
    sub = (core.bus.subscribe(("run.output", "run.state"), run_id=run_id)
           if follow and not search else None)

    async def send_lines(rows: list[dict[str, Any]]) -> None:
        # A page of long lines is more than a client reads as one message: cut like live output.
        # Each batch is of one stream, as live ones are: a view tells the daemon's notes
        # ("system") from the agent's lines that imitate them (text.as_agents).
        for stream, same in groupby(rows, key=lambda r: r.get("stream")):
            for lines in line_batches([r["line"] for r in same]):
                await send(wire.event({"kind": "run.output", "run_id": run_id, "stream": stream,
                                       "lines": lines}))

    async def send_stored(after: int | None, most: int = 0) -> tuple[int, int | None]:
        """Page through the store after `after` (committed first), at most `most` lines when
        not 0: a long run's output never sits in memory whole, whatever tail a watcher asks
        for. (lines sent, the last id)"""
        await core.store.flush(searchable=search is not None, lines_of=(run_id,))
        sent = 0
        while rows := await core.store.read(lambda db, after=after: history.query_output(
                db, run_id, after_id=after, limit=LOG_PAGE, search=search)):
            if most:
                rows = rows[: most - sent]
            await send_lines(rows)
            sent += len(rows)
            after = rows[-1]["id"]
            if most and sent >= most:
                break
        return sent, after

    try:
        # From the tail's first line when a tail is asked for, over what is committed by now.
        await core.store.flush(searchable=search is not None, lines_of=(run_id,))
        after = await core.store.read(lambda db: history.tail_after(db, run_id, tail, search))
        # A live run's lines committed after the tail was found are past it: without follow,
        # `--tail N` is N lines (CI saw two for `--tail 1`); with follow, the live events bring them.
        sent, after = await send_stored(after, most=0 if sub is not None else tail)
        # Seen: the lines up to the last one sent, not every line stored by now (a batch
        # committed after the last page is for the live events to bring).
        seen = (await core.store.read(lambda db: history.count_output(db, run_id, after))
                ) if tail else sent
        if not sent and run_id not in core.runs.runs and (
                await core.store.read(lambda db: history.get_run(db, run_id))) is None:
            raise _no_such_run(run_id)  # a typo must not read as a run that printed nothing
        if sub is None or run_id not in core.runs.runs:
            if sub is not None:
                # It ended while the store was read: its last lines, published to `sub` before
                # the end, are stored by now (a fast run's whole output was lost here).
                sent += (await send_stored(after))[0]
            return {"run": run_id, "lines": sent, "output_dropped": await _dropped(core, run_id)}
        while True:
            event = await sub.get()
            if event["kind"] == "run.output":
                # The subscription started before the store was read: skip lines already sent.
                if event["first"] < seen:
                    event = {**event, "first": seen, "lines": event["lines"][seen - event["first"] :]}
                    if not event["lines"]:
                        continue
                await send(wire.event(event))
            elif event["kind"] == "run.state" and event["run"]["state"] not in LIVE_STATES:
                # The count its sealed end holds, as the end's state event carries it: no
                # second read of the store on `run --wait`'s way out.
                return {"run": run_id, "state": event["run"]["state"],
                        "exit_code": event["run"]["exit_code"],
                        "output_dropped": event["run"].get("output_dropped", 0)}
            elif event["kind"] == "bus.dropped":
                await send(wire.event(event))
    finally:
        if sub is not None:
            core.bus.unsubscribe(sub)


async def _dropped(core: Core, run_id: str) -> int:
    """The run's output lines a full queue dropped, as its chained end counts them (0 while it
    runs: its count is sealed with its end)."""
    return await core.store.read(lambda db: output_dropped(db.conn, run_id))


OPS: OpTable = {
    "runs.list": Op(runs_list),
    "run.start": Op(run_start, decides=True),
    "run.stop": Op(run_stop, decides=True),
    "run.get": Op(run_get),
    "logs": Op(logs),
}
