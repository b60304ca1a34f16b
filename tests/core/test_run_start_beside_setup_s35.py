"""Under bubblewrap the run.started commit lands while the sandbox is set up (bwrap holds the
command on --block-fd until prepare() returns, and prepare() waits for the commit): issue 17's
`run --wait`. The start is still on record before anything of the command runs. A commit that
fails after bwrap has set up refuses the run: the command never ran, bwrap is gone, the view
unmounted, the folder back, and nothing of the run is in the history. A real BwrapBackend in
this process; the writer's run.started commit is held 0.3 s (longer than bwrap's setup) and,
for the refusal, then fails."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import psutil

from console.config.load import load
from console.daemon.bus import Bus
from console.daemon.runs import RunManager
from console.paths import resolve
from console.protocol import Failure
from console.sandbox.bwrap import BwrapBackend
from store.db import StoreError
from store.writer import StoreWriter
from tests.conftest import needs_bwrap

HOLD_S = 0.3


class SlowStart(StoreWriter):
    fail = False
    landed_at = 0.0

    async def acommit(self, kind: str, **kw: Any) -> dict[str, Any]:
        if kind != "run.started":
            return await super().acommit(kind, **kw)
        await asyncio.sleep(HOLD_S)
        if self.fail:
            raise StoreError("the store could not commit: OperationalError: disk I/O error")
        out = await super().acommit(kind, **kw)
        SlowStart.landed_at = time.time()
        return out


def _start(tmp_path: Path, fail: bool) -> tuple[Any, Path, SlowStart, RunManager]:
    paths = resolve(tmp_path / "home")
    paths.ensure()
    ws = tmp_path / "ws"
    ws.mkdir()
    marker = ws / "ran"
    script = "date +%s.%N > ran"  # the workspace is the command's working folder
    cfg = load(tmp_path / "config.toml",
               text=f'[profiles.t]\nsandbox = "bwrap"\ncommand = ["sh", "-c", "{script}"]\n')
    writer = SlowStart(paths.db_file, os.urandom(32)).start()
    writer.fail = fail
    backend = BwrapBackend()
    manager = RunManager(paths, lambda: cfg, writer, Bus(), choose_backend=lambda *a: backend)

    async def go() -> Any:
        try:
            run = await manager.start("t", actor="alice", workspace=str(ws))
        except Failure as exc:
            return exc
        await manager.tasks[run.id]
        return run

    return asyncio.run(go()), marker, writer, manager


def _kinds(writer: StoreWriter) -> list[str]:
    writer.flush()
    return writer.call(lambda db: [r[0] for r in db.conn.execute(
        "SELECT kind FROM events WHERE run_id IS NOT NULL ORDER BY id")]).result(10)


@needs_bwrap
def test_a_start_recorded_beside_the_setup_runs_after_its_record(tmp_path: Path) -> None:
    run, marker, writer, _ = _start(tmp_path, fail=False)
    try:
        assert run.state == "exited" and run.exit_code == 0, (run.state, run.notes)
        assert float(marker.read_text()) >= SlowStart.landed_at, "ran before its start landed"
        assert _kinds(writer) == ["run.started", "run.ended"]
    finally:
        writer.close()


@needs_bwrap
def test_a_start_whose_record_fails_after_the_setup_never_runs(tmp_path: Path) -> None:
    refused, marker, writer, manager = _start(tmp_path, fail=True)
    try:
        assert isinstance(refused, Failure) and refused.code == "record-failed", refused
        assert "was not started: its start could not be recorded" in refused.message
        assert not marker.exists(), "the command ran although its start was not recorded"
        assert manager.live() == []
        assert "bwrap" not in [p.name() for p in psutil.Process().children(recursive=True)]
        assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()
        assert not any(p.name == refused.message.split()[1] for p in manager.paths.runs_dir.iterdir())
        assert _kinds(writer) == [], "a refused start left records of its run"
    finally:
        writer.close()

