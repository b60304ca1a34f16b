"""A run stop whose run.stop record is uncertain (store/waits.StoreUncertain) and then lands:
the run's notes say it is not confirmed as recorded, not that it could not be. Review s33
(helper 129). The stall: store.audit.write_head sleeps 1.5 s inside the batch; run.stop's
timeout 0.3 s, SETTLE_S 0.3 s."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from console.config.load import load
from console.daemon.bus import Bus
from console.daemon.runs import Run, RunManager
from console.paths import resolve
from store.writer import StoreWriter

from .store_stall import stall_batches


class ShortStop(StoreWriter):
    async def acommit(self, kind: str, **kw: Any) -> dict[str, Any]:
        if kind == "run.stop":
            kw["timeout"] = 0.3
        return await super().acommit(kind, **kw)


def test_an_uncertain_run_stop_is_said_unconfirmed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    armed = stall_batches(monkeypatch)
    paths = resolve(tmp_path / "home")
    paths.ensure()
    cfg = load(tmp_path / "config.toml", text='[profiles.t]\ncommand = ["true"]\n')
    w = ShortStop(paths.db_file, os.urandom(32)).start()
    try:
        manager = RunManager(paths, lambda: cfg, w, Bus(), choose_backend=lambda *a: None)
        manager.runs["abcd"] = Run("abcd", "t", "bwrap", str(tmp_path), ["true"], "alice",
                                   state="running")
        armed["on"] = True
        run, unrecorded = asyncio.run(manager.stop("abcd", actor="bob", grace=0.1))
        armed["on"] = False
        w.flush(timeout=10)
        stops = w.call(lambda db: db.conn.execute(
            "SELECT count(*) FROM events WHERE kind='run.stop'").fetchone()[0]).result(5)
    finally:
        armed["on"] = False
        w.close()
    assert stops == 1  # the stop is on the record
    assert not any("could not be recorded" in n for n in run.notes), run.notes
    assert any("is not confirmed as recorded" in n for n in run.notes), run.notes
    assert getattr(unrecorded, "uncertain", False)
