"""A new run's id is one nothing else holds: not a live run, not the store (rows, or a start
recorded without a row), not a folder under runs/. The store's ids are read once per daemon."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from console.daemon import runs as runs_module
from console.daemon.bus import Bus
from console.daemon.runs import RunManager
from console.paths import resolve
from store.runs_table import upsert_run
from store.writer import StoreWriter


def test_new_ids_skip_every_holder_and_the_store_is_read_once(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    paths = resolve(tmp_path / "home")
    paths.ensure()
    writer = StoreWriter(paths.db_file, os.urandom(32)).start()
    try:
        writer.call(lambda conn: upsert_run(conn, {"id": "row1", "state": "exited"})).result(10)
        writer.commit("run.started", run_id="evt1", text="a start whose row was never saved")
        paths.run_dir("dir1").mkdir(parents=True)
        manager = RunManager(paths, lambda: None, writer, Bus(), choose_backend=lambda *a: None)
        manager.runs["live"] = object()  # type: ignore[assignment]
        reads = []
        real_call = writer.call
        monkeypatch.setattr(writer, "call", lambda fn: (reads.append(fn), real_call(fn))[1])
        offered = iter(["row1", "evt1", "dir1", "live", "new1", "row1", "new1", "new2"])
        monkeypatch.setattr(runs_module, "new_id", lambda length: next(offered))

        async def two() -> list[str]:
            return [await manager._new_id(), await manager._new_id()]

        assert asyncio.run(two()) == ["new1", "new2"]
        assert len(reads) == 1  # the store's ids once, not a round trip per start
    finally:
        writer.close()
