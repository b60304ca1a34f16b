"""`audit verify` checks the search index on a temporary copy of the history in TMPDIR. A
process killed during the check (SIGKILL, the OOM killer) left that copy there for good:
every command and line of output of the history, and one more full copy for each such kill,
until TMPDIR was full and no verify could check the index any more. The next check now
removes the copies whose holder is gone, and leaves alone a copy a live check still uses.

Two real verifies in child processes are paused at the check (the connection's execute of
FTS5's integrity-check, which every history reaches); one is SIGKILLed there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from store import audit
from store.db import open_db
from store.writer import StoreWriter

ROOT = Path(__file__).resolve().parents[2]
PAUSED_VERIFY = r"""
import sqlite3, sys, tempfile
from store import audit, integrity
from store.db import open_db

tempfile.tempdir = sys.argv[3]
connect = sqlite3.connect

class Paused(sqlite3.Connection):
    def execute(self, sql, *args):
        if "integrity-check" in sql:
            print("checking", flush=True)
            sys.stdin.readline()
        return super().execute(sql, *args)

integrity.sqlite3.connect = lambda *a, **k: connect(*a, factory=Paused, **k)
result = audit.verify(open_db(sys.argv[1], readonly=True), bytes.fromhex(sys.argv[2]))
print("ok" if result.ok else result.reason, flush=True)
"""


def _paused_verify(db_path: Path, key: bytes, scratch: Path) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-c", PAUSED_VERIFY, str(db_path), key.hex(), str(scratch)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.stdout is not None and p.stdout.readline().strip() == "checking"
    return p


def _copies(scratch: Path) -> list[str]:
    return sorted(p.name for p in scratch.iterdir() if p.name.startswith("pilothouse-verify-"))


def test_a_killed_verifys_copy_is_removed_and_a_live_ones_is_kept(
        make_writer: Callable[..., StoreWriter], db_path: Path, key: bytes, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    w = make_writer()
    for i in range(50):
        w.commit("approval.decided", run_id="r1", actor="alice", text=f"secret command {i}")
    w.close()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    killed = _paused_verify(db_path, key, scratch)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    left = _copies(scratch)
    assert len(left) == 1, left  # what the kill left: a copy of the whole history
    live = _paused_verify(db_path, key, scratch)
    try:
        in_use = [name for name in _copies(scratch) if name not in left]
        monkeypatch.setattr(tempfile, "tempdir", str(scratch))
        db = open_db(db_path, readonly=True)
        try:
            assert audit.verify(db, key).ok
        finally:
            db.close()
        assert _copies(scratch) == in_use, "the killed verify's copy is still there"
        out, _ = live.communicate("\n" * 4, timeout=60)  # one pause per full-text index
        assert out.split()[-1] == "ok", f"the live verify's check failed: {out!r}"
    finally:
        live.kill()
        live.wait()
    assert os.listdir(scratch) == []
