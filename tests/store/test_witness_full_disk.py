"""Attack review: an agent can fill the disk its workspace shares with the daemon's state. SQLite
keeps committing into a WAL it reuses, but the witness line of a security batch cannot be
appended; the decision must then not count as recorded (fail closed), and the store stops,
as it does when a sync fails. A real full file system: a 64 KiB tmpfs (needs root to mount)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from store.db import StoreError
from store.writer import StoreWriter


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "tiny"
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
            capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill(folder: Path) -> None:
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError) as full:
            while True:
                os.write(fd, b"x" * 512)
    finally:
        os.close(fd)
    assert full.value.errno == errno.ENOSPC


def test_a_decision_whose_witness_line_cannot_be_written_is_refused(
        make_writer: Callable[..., StoreWriter], tiny_disk: Path) -> None:
    w = make_writer(witness=tiny_disk / "audit.witness")
    w.commit("approval.decided", text="first")  # witnessed
    _fill(tiny_disk)
    # The witness's last page still has room for some lines; past it, a line cannot be added.
    refused = None
    for i in range(200):
        try:
            w.commit("approval.decided", text=f"decision {i}")
        except StoreError as exc:
            refused = (i, str(exc))
            break
    assert refused is not None, "every decision was accepted with the witness disk full"
    assert "witness" in refused[1]
    with pytest.raises(StoreError):  # and the store stopped: nothing later is accepted
        w.commit("approval.decided", text="later")
