"""Run lifecycle: start an agent in its sandbox, stream its output, stop it, reap it, and
reconcile after a daemon restart.

Output is bulk: lines go to the store's batched writer and, coalesced every 50 ms, to the bus,
so a run printing tens of thousands of lines a second costs one bus event per tick, not per line.
State changes are security-relevant and committed before they are announced.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from console.agents import codex_state_folders, home_mounts
from console.config.load import Config, Profile
from console.daemon.bus import Bus
from console.daemon.lost_runs import close_lost_requests, kill_leftovers, recorded_pids
from console.daemon.output_pump import pump_output
from console.daemon.run_end import note_if_it_fails
from console.daemon.run_prep import carry, env_reach, open_workspace, run_env, start_refused
from console.paths import Paths
from console.protocol import LIVE_STATES, Failure, new_id
from console.sandbox.base import (
    Mount,
    SandboxError,
    SandboxHandle,
    SandboxSpec,
    remove_unmounted,
    run_cgroup_name,
    sandbox_python,
    sweep_removed,
)
from console.sandbox.spare_folders import SpareRunFolders, sweep_spares
from store.runs_table import mark_lost, restore_missing_rows, run_ids, runs_in_states, upsert_run

END_WAIT_S = 30.0  # a run's end waits this long for its record (then it stays queued)
log = logging.getLogger("pilothouse.runs")



@dataclass
class Run:
    id: str
    profile: str
    backend: str
    workspace: str
    command: list[str]
    actor: str
    state: str = "starting"
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    exit_code: int | None = None
    pids: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stop_requested: str | None = None  # "stop" or "kill" when a person asked
    stopped_by: str | None = None  # who asked (the end names them, not the run's starter)
    output_dropped: int = 0  # its output lines a full store queue refused (its sealed end's)

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("stop_requested", None)
        data.pop("stopped_by", None)
        data["unsandboxed"] = self.backend == "none"
        return data


# What a RunManager needs from the rest of the daemon for each run: set up its sockets and
# bridge before the agent's command runs, and tear them down when it ends.
RunHook = Callable[[Run, SandboxHandle | None, Profile], Awaitable[None]]


class RunManager:
    def __init__(
        self,
        paths: Paths,
        config: Callable[[], Config],
        writer: Any,
        bus: Bus,
        *,
        choose_backend: Callable[[str, Profile], Any],
        on_prepare: RunHook | None = None,
        on_end: RunHook | None = None,
        on_stop: Callable[[str, str], Awaitable[object]] | None = None,
    ) -> None:
        self.paths = paths
        self.config = config
        self.writer = writer
        self.bus = bus
        self.choose_backend = choose_backend
        self.on_prepare = on_prepare
        self.on_end = on_end
        # (run id, why): a stop begins. The run's pending requests are closed before it is
        # signalled, so nobody approves one for an agent that is being stopped.
        self.on_stop = on_stop
        self.runs: dict[str, Run] = {}
        self.handles: dict[str, SandboxHandle] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        # Lines emitted per run, so a follower that read the store can skip what it has seen.
        self.line_counts: dict[str, int] = {}
        self.folders = SpareRunFolders(paths.runs_dir)
        self._known_ids: set[str] | None = None

    # --- queries -----------------------------------------------------------------------------

    def get(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            raise Failure("no-such-run", f"no live run {run_id!r}", "list runs with: pilothouse ps")
        return run

    def live(self) -> list[Run]:
        return sorted(self.runs.values(), key=lambda r: r.started_at)

    def stats(self, run_id: str) -> dict[str, Any]:
        handle = self.handles.get(run_id)
        if handle is None:
            return {}
        try:
            return dict(handle.stats())
        except (psutil.Error, OSError):
            return {}

    # --- start -------------------------------------------------------------------------------

    async def _new_id(self) -> str:
        stored = await self._stored_ids()
        length = 4
        while True:
            for _ in range(20):
                candidate = new_id(length)
                if (candidate not in self.runs and candidate not in stored
                        and not os.path.lexists(self.paths.run_dir(candidate))):
                    stored.add(candidate)
                    return candidate
            length += 1

    async def _stored_ids(self) -> set[str]:
        """The run ids the store holds, read once: after that this daemon, the only writer of
        runs for its home (the daemon lock), adds each id it gives out, and a start does not
        wait on the writer's queue to learn that a random id is new."""
        if self._known_ids is None:
            self._known_ids = await asyncio.wrap_future(self.writer.call(run_ids))
        return self._known_ids

    async def start(
        self,
        profile_name: str,
        *,
        actor: str,
        workspace: str | None = None,
        command: list[str] | None = None,
        client_cwd: str | None = None,
        requester: tuple[int, int] | None = None,
        caller_env: dict[str, str] | None = None,
    ) -> Run:
        cfg = self.config()
        try:
            profile = cfg.profile(profile_name)
        except Exception as exc:  # ConfigError: the message names the known profiles
            raise Failure("no-such-profile", str(exc), "list profiles with: pilothouse profiles") from None
        # The person who asked (SO_PEERCRED uid, gid); the daemon's own for in-process callers.
        asker = requester or (os.getuid(), os.getgid())
        ws, ws_fd = open_workspace(self.paths, profile, workspace, client_cwd, asker)
        try:
            return await self._start(profile, ws, ws_fd, asker, actor=actor, command=command,
                                     caller_env=caller_env)
        finally:
            os.close(ws_fd)

    async def _start(self, profile: Profile, ws: Path, ws_fd: int, asker: tuple[int, int], *,
                     actor: str, command: list[str] | None,
                     caller_env: dict[str, str] | None) -> Run:  # fmt: skip
        try:
            backend = await asyncio.to_thread(self.choose_backend, profile.sandbox, profile)
        except SandboxError as exc:
            raise Failure("no-sandbox", str(exc), exc.hint or "run: pilothouse doctor") from None
        if backend.name == "none" and asker[0] not in (0, os.getuid()):
            # Unsandboxed is the daemon's user itself (root, or the owner): never a teammate's.
            raise Failure("not-allowed", f"profile {profile.name} runs unsandboxed, as the "
                          "daemon's own user; only that user or root may start it",
                          "use a profile with a sandbox, or ask the daemon's owner")
        backend.prestart()  # the cgroup move's kernel wait overlaps what follows (bwrap.py)
        run_id = await self._new_id()
        run_dir = self.paths.run_dir(run_id)
        run_dir.mkdir(mode=0o755)
        run = Run(
            id=run_id,
            profile=profile.name,
            backend=backend.name,
            workspace=str(ws),
            command=list(command or profile.command),
            actor=actor,
        )
        self.runs[run_id] = run
        # The start is committed before anything runs: a run the history does not know of
        # must not exist. The run folder is filled meanwhile (in a thread: a spare made ahead
        # of time is renamed into place, else a dozen small files are made, each waiting on
        # the file system's journal as the commit waits on the disk); nothing runs yet.
        interpreter = sandbox_python(backend.name)
        setup_notes, started = await asyncio.gather(
            asyncio.to_thread(self.folders.take, run_dir, interpreter),
            self.writer.acommit(
                "run.started",
                run_id=run_id,
                actor=actor,
                text=f"{profile.name} in {backend.name}: {' '.join(run.command)}",
                data={"profile": profile.name, "backend": backend.name, "workspace": str(ws),
                      "command": run.command, "unsandboxed": backend.name == "none",
                      "started_at": run.started_at},
            ),
            return_exceptions=True,  # both finish before either failure is acted on
        )
        if isinstance(started, BaseException) or isinstance(setup_notes, BaseException):
            # Nothing ran: the run leaves the live table and its folder goes.
            self.runs.pop(run_id, None)
            self.folders.give_back(run_dir)
            if isinstance(started, BaseException):
                raise start_refused(run_id, started, self.paths) from None
            raise setup_notes
        run.notes[:0] = setup_notes
        self._save_soon(run)
        carried = (await carry(run_dir, profile, ws, ws_fd, asker, backend.name, run.notes)
                   if profile.carry else [])
        spec = SandboxSpec(
            run_id=run_id,
            profile=profile.name,
            command=run.command,
            workspace=ws,
            run_dir=run_dir,
            env=run_env(run_id, profile, caller_env, run.notes,
                        env_reach(backend.name, ws_fd, asker)),
            limits=profile.limits,
            gpu=profile.gpu,
            gpus=profile.gpus,
            image=profile.image,
            extra_mounts=[Mount(src, target) for src, target in [*home_mounts(run_dir), *carried]],
            scratch=codex_state_folders(),
            requester=asker,
            workspace_fd=ws_fd,
        )

        async def prepare(handle: SandboxHandle) -> None:
            if self.on_prepare is not None:
                await self.on_prepare(run, handle, profile)

        try:
            handle = await backend.start(spec, prepare)
        except Exception as exc:  # a bug too (not only SandboxError, OSError): the run ends
            if not isinstance(exc, (SandboxError, OSError)):
                log.exception("run %s: the sandbox backend failed", run_id)
                exc = SandboxError(f"{type(exc).__name__}: {exc}",
                                   f"a bug in Pilothouse: the daemon log ({self.paths.daemon_log}) "
                                   "has its traceback")
            run.state, run.ended_at = "failed", time.time()
            run.notes.append(f"could not start the sandbox: {exc}")
            await self._finish(run, None, profile)
            hint = getattr(exc, "hint", "") or "run: pilothouse doctor"
            raise Failure("sandbox-failed", f"run {run_id} could not start: {exc}", hint) from None
        finally:
            self.folders.refill(interpreter)  # the next start's folder, made while this one runs
        self.handles[run_id] = handle
        # The launcher and the sandbox's first process: enough to find what is left after a
        # crash (their descendants), and far cheaper than walking the process tree here.
        run.pids = sorted({p for p in (handle.pid, handle.netns_pid) if p})
        run.notes.extend(handle.notes)
        run.state = "running"
        self._save_soon(run)
        self._publish_state(run)
        for note in run.notes:
            self._emit_lines(run_id, [f"[pilothouse] {note}"], "system")
        self.tasks[run_id] = asyncio.create_task(self._supervise(run, handle, profile))
        return run

    # --- supervise ---------------------------------------------------------------------------

    async def _supervise(self, run: Run, handle: SandboxHandle, profile: Profile) -> None:
        pump = asyncio.create_task(pump_output(
            handle.output, lambda lines: self._emit_lines(run.id, lines, "out")))
        try:
            code = await handle.wait()
        except Exception as exc:  # the backend lost the process: record, never hang
            run.notes.append(f"lost track of the sandbox: {exc}")
            code = -1
        try:
            await asyncio.wait_for(pump, timeout=5)
        except (TimeoutError, asyncio.CancelledError):
            pump.cancel()
        run.exit_code = code
        run.ended_at = time.time()
        end_notes = bounded_notes(list(getattr(handle, "end_notes", [])))
        if end_notes:
            run.notes.extend(end_notes)
            self._emit_lines(run.id, [f"[pilothouse] {n}" for n in end_notes], "system")
            self.writer.record("sandbox.finding", run_id=run.id, actor="daemon",
                               text="; ".join(end_notes), data={"notes": end_notes})  # fmt: skip
        if run.stop_requested == "kill":
            run.state = "killed"
        elif run.stop_requested == "stop":
            run.state = "stopped"
        else:
            run.state = "exited" if code == 0 else "failed"
        await self._finish(run, handle, profile)

    async def _finish(self, run: Run, handle: SandboxHandle | None, profile: Profile) -> None:
        if self.on_end is not None:
            try:
                await self.on_end(run, handle, profile)
            except Exception as exc:  # teardown must not keep a run alive in the table
                run.notes.append(f"teardown: {exc}")
        # The run's row is queued ahead of the end event, so both share one transaction (one
        # disk flush): once the event is durable, so is the row. The event seals the run's
        # output (every line is queued by now): its data gains their digest (output_seal.py).
        # A run's end is a fact, not a permission: behind a stuck store it is not withdrawn
        # (as a refused action's record is) but lands with its row when the store moves.
        try:
            saved = self.writer.call(self._upsert(run))
            ending = self.writer.submit(
                "run.ended", run_id=run.id, actor=run.stopped_by if run.stop_requested else None,
                text=f"{run.state} (exit {run.exit_code})",
                data={"state": run.state, "exit_code": run.exit_code,
                      "duration_s": round((run.ended_at or time.time()) - run.started_at, 3),
                      # what the row says of the end, chained: verify compares them
                      "ended_at": run.ended_at, "notes": list(run.notes)},
                seal_output=True,
            )
            try:
                # shielded: a wait that ends must not cancel (withdraw) the queued end
                ended = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(ending)),
                                               END_WAIT_S)
                dropped = (ended.get("data") or {}).get("output_dropped")
                run.output_dropped = dropped if type(dropped) is int and dropped > 0 else 0
            except TimeoutError:  # still queued: a note now would contradict the end that lands
                log.error("run %s: its end is not recorded after %ss (the store is stuck); it "
                          "stays queued, with the run's row", run.id, END_WAIT_S)
                ending.add_done_callback(note_if_it_fails(  # unless its batch fails: run_end.py
                    asyncio.get_running_loop(), self.writer, run, self._upsert))
                saved = None
            except Exception as exc:  # the batch failed: neither the end nor its row is stored
                run.notes.append(f"could not record the end: {exc}")
                saved = self.writer.call(self._upsert(run))  # with that note
            if saved is not None:
                await asyncio.wrap_future(saved)
        except Exception as exc:
            # The process is gone whatever the disk says: the run still leaves the live table
            # and its followers hear of its end. The store keeps it as started, so the next
            # daemon's reconcile marks it lost.
            run.notes.append(f"could not save the run's row: {exc}")
            log.error("run %s ended but its row could not be saved: %s", run.id, exc)
        self.runs.pop(run.id, None)
        self.handles.pop(run.id, None)
        self.tasks.pop(run.id, None)
        self.line_counts.pop(run.id, None)
        # Kept for a later start; never a folder an unsandboxed agent could write in.
        self.folders.give_back(self.paths.run_dir(run.id), reusable=run.backend != "none")
        self._publish_state(run)

    def _emit_lines(self, run_id: str, lines: list[str], stream: str) -> None:
        now = time.time()
        for line in lines:
            self.writer.record_output(run_id, stream, line, ts=now)
        first = self.line_counts.get(run_id, 0)
        self.line_counts[run_id] = first + len(lines)
        self.bus.publish(
            {"kind": "run.output", "run_id": run_id, "stream": stream, "first": first, "lines": lines}
        )

    # --- control -----------------------------------------------------------------------------

    async def stop(self, run_id: str, *, actor: str, kill: bool = False,
                   grace: float = 2.0) -> tuple[Run, Exception | None]:
        """Stop (or kill) a run; (the run, why its stop is not (confirmed) on the record, else
        None: a StoreUncertain's record may yet land).

        A stop takes effect whether or not the store can record it: it only ever takes power
        from the agent, and a daemon stopping must still stop its runs (their views are
        unmounted by their teardown). The run's notes and the answer say it is unrecorded."""
        run = self.get(run_id)
        handle = self.handles.get(run_id)
        verb = "kill" if kill else "stop"
        unrecorded = None
        try:
            await self.writer.acommit(f"run.{verb}", run_id=run_id, actor=actor,
                                      text=f"{verb} requested by {actor}")
        except Exception as exc:
            unrecorded = exc
            said = ("is not confirmed as recorded" if getattr(exc, "uncertain", False)
                    else "could not be recorded")  # store/waits.StoreUncertain: it may land
            run.notes.append(f"the {verb} by {actor} {said} ({exc})")
            log.error("run %s: %s by %s %s (stopping anyway): %s", run_id, verb, actor, said,
                      exc)
        run.stop_requested, run.stopped_by = verb, actor
        if self.on_stop is not None:
            try:
                await self.on_stop(run_id, f"{verb} requested by {actor}")
            except Exception as exc:  # the stop goes on: the end's teardown cancels them too
                log.error("run %s: closing its requests at the %s failed: %s", run_id, verb, exc)
        if run.state in ("running", "starting"):
            run.state = "stopping"
            self._publish_state(run)
        if handle is not None:
            if kill:
                await handle.kill()
            else:
                await handle.stop(grace)
        task = self.tasks.get(run_id)
        if task is not None:
            await asyncio.wait({task}, timeout=grace + 5)
        return run, unrecorded

    async def close(self, *, actor: str, grace: float = 2.0) -> None:
        """The daemon stops: every live run stopped, the spare run folders removed."""
        await asyncio.gather(
            *(self.stop(r.id, actor=actor, grace=grace) for r in self.live()),
            return_exceptions=True,
        )
        await asyncio.to_thread(self.folders.close)

    # --- persistence -------------------------------------------------------------------------

    def _save_soon(self, run: Run) -> None:
        """Queue the run's row without waiting: the security event before it is already
        durable, and the final save at the end is awaited."""
        fut = self.writer.call(self._upsert(run))
        fut.add_done_callback(_log_failure)

    @staticmethod
    def _upsert(run: Run) -> Callable[[Any], None]:
        row = {
            "id": run.id, "profile": run.profile, "backend": run.backend, "state": run.state,
            "command": json.dumps(run.command), "workspace": run.workspace,
            "started_at": run.started_at, "ended_at": run.ended_at, "exit_code": run.exit_code,
            "pids": json.dumps(run.pids), "info": json.dumps({"actor": run.actor, "notes": run.notes}),
        }

        return lambda conn: upsert_run(conn, row)

    def _publish_state(self, run: Run) -> None:
        self.bus.publish({"kind": "run.state", "run_id": run.id, "run": run.public()})

    async def reconcile(self) -> list[dict[str, Any]]:
        """After a crash: runs the store thinks are alive are killed if anything of them is
        left (bubblewrap dies with its parent, so normally nothing is) and marked lost."""

        await asyncio.to_thread(sweep_removed, self.paths.runs_dir)
        await asyncio.to_thread(sweep_spares, self.paths.runs_dir)
        await self._stored_ids()  # here, so the first start does not read them
        restored = set(await asyncio.wrap_future(self.writer.call(restore_missing_rows)))
        rows = await asyncio.wrap_future(
            self.writer.call(lambda conn: runs_in_states(conn, LIVE_STATES)))
        found = []
        for run_id, pids_json in rows:
            killed = kill_leftovers(recorded_pids(pids_json),
                                    run_cgroup_name(self.paths.runs_dir, run_id))
            ended_at = time.time()  # the row's end, chained in the event (audit verify)
            await self.writer.acommit(
                "run.lost", run_id=run_id, actor="daemon",
                text=f"the daemon restarted; run {run_id} was lost",
                data={"killed_leftover_pids": killed, "ended_at": ended_at, "exit_code": None,
                      **({"row_missing": True} if run_id in restored else {})},
                seal_output=True,  # from what the store holds of it (store/output_seal.py)
            )
            await asyncio.wrap_future(
                self.writer.call(lambda conn, r=run_id, t=ended_at: mark_lost(conn, r, t)))
            await close_lost_requests(self.writer, run_id)
            try:
                remove_unmounted(self.paths.run_dir(run_id))  # never through a mount
            except ValueError:
                log.error("a run in the history has the id %r, which no run of ours has; its "
                          "folder was not looked for (run `pilothouse audit verify`)", run_id)
            found.append({"run_id": run_id, "killed": killed})
        return found


def _log_failure(fut: Any) -> None:
    if fut.exception() is not None:
        log.error("could not save a run's row: %s", fut.exception())


END_NOTES_MAX, END_NOTE_CHARS = 50, 2000  # what one run's end may say (review s30: 50 MB)


def bounded_notes(notes: list[str]) -> list[str]:
    """A run's end notes as recorded and shown: each cut, and past END_NOTES_MAX counted, so
    one record, one bus message and one history answer stay far below what a client reads."""
    out = [n if len(n) <= END_NOTE_CHARS else n[:END_NOTE_CHARS] + " [cut]"
           for n in notes[:END_NOTES_MAX]]
    if len(notes) > END_NOTES_MAX:
        out.append(f"{len(notes) - END_NOTES_MAX} more notes of the run's end not shown: "
                   "look at the workspace before tools on the host use it")
    return out

