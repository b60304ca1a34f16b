"""A backend that fails with anything but SandboxError or OSError (a bug: review s16 found a
RecursionError from a deep workspace tree) must still end the run: before, the exception left
RunManager.start with the run in the live table as "starting", for ever, and no run.ended."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from console.config.load import load
from console.daemon.bus import Bus
from console.daemon.runs import RunManager
from console.paths import resolve
from console.protocol import Failure
from store.writer import StoreWriter


class BrokenBackend:
    name = "bwrap"

    def prestart(self) -> None:
        pass

    async def start(self, spec: Any, prepare: Any = None) -> Any:
        raise RuntimeError("a bug in the backend")


def test_a_backend_bug_ends_the_run_as_failed_and_says_so(tmp_path: Path) -> None:
    paths = resolve(tmp_path / "home")
    paths.ensure()
    ws = tmp_path / "ws"
    ws.mkdir()
    cfg = load(tmp_path / "config.toml", text='[profiles.t]\ncommand = ["true"]\nsandbox = "bwrap"\n')
    writer = StoreWriter(paths.db_file, os.urandom(32)).start()
    try:
        manager = RunManager(paths, lambda: cfg, writer, Bus(),
                             choose_backend=lambda *a: BrokenBackend())
        with pytest.raises(Failure) as failed:
            asyncio.run(manager.start("t", actor="alice", workspace=str(ws)))
        assert failed.value.code == "sandbox-failed", failed.value
        assert "a bug in the backend" in str(failed.value)
        assert manager.live() == [], [r.state for r in manager.live()]
        writer.flush()
        ended = writer.call(lambda db: [json.loads(r[0]) for r in db.conn.execute(
            "SELECT data FROM events WHERE kind = 'run.ended'")]).result(10)
        assert [e["state"] for e in ended] == ["failed"], ended
    finally:
        writer.close()
