"""Review s17 (store): the audit witness on a disk an agent filled.

A full file system does not always refuse a write outright: it writes what fits in the file's
last page and returns a short count, and only the next write fails with ENOSPC. The witness
took any return of os.write for a whole line, so the decision whose line was cut short was
answered as recorded (its witness line half written), which is what test_witness_full_disk.py
says cannot happen; and the half line stayed in the file, so every later `audit verify`,
after the disk had room again and the daemon restarted, reported a damaged witness: the
store's own failure read as tampering. Real 64 KiB tmpfs, real writer, real witness.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from store import witness as witness_mod
from store.db import StoreError
from store.writer import StoreWriter
from tests.store.test_audit_tamper_attacks import _verify
from tests.store.test_witness_full_disk import _fill, tiny_disk  # noqa: F401 - a fixture


def _decide_until_refused(w: StoreWriter) -> list[int]:
    """Decisions until one is refused; the ids of those answered as recorded."""
    accepted = []
    for i in range(400):
        try:
            accepted.append(w.commit("approval.decided", text=f"decision {i}")["id"])
        except StoreError as exc:
            assert "witness" in str(exc)
            return accepted
    raise AssertionError("every decision was accepted with the witness disk full")


def test_every_decision_answered_as_recorded_has_its_whole_witness_line(
        make_writer: Callable[..., StoreWriter], key: bytes, tiny_disk: Path) -> None:  # noqa: F811
    witness = tiny_disk / "audit.witness"
    w = make_writer(witness=witness)
    w.commit("approval.decided", text="first")
    _fill(tiny_disk)
    accepted = _decide_until_refused(w)
    w.close()  # its thread may still be writing (and taking back) a line for bulk rows
    seen = witness_mod.read(witness, key)
    assert seen is not None
    missing = [i for i in accepted if i not in seen.hashes]
    assert not missing, (f"decisions {missing} were answered as recorded, but their witness "
                         f"lines are not whole ({seen.problem}): "
                         f"{witness.read_bytes()[-120:]!r}")
    assert seen.problem is None, seen.problem


def test_a_full_disk_does_not_read_as_tampering_once_it_has_room_again(
        make_writer: Callable[..., StoreWriter], db_path: Path, key: bytes,
        tiny_disk: Path) -> None:  # noqa: F811
    witness = tiny_disk / "audit.witness"
    w = make_writer(witness=witness)
    w.commit("approval.decided", text="first")
    _fill(tiny_disk)
    _decide_until_refused(w)
    w.close()
    (tiny_disk / "filler").unlink()  # room again; the daemon restarts
    w = make_writer(witness=witness)
    w.commit("approval.decided", text="after the restart")
    w.close()
    result = _verify(db_path, key, witness)
    assert result.ok, f"a full disk, then room: verify reports {result.reason!r}"
