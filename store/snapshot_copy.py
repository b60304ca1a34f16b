"""A temporary copy of a connection's snapshot, for a check that must write (FTS5's
integrity-check) without touching the history file, and the sweep of copies a killed
process left behind.

The copy needs its name for as long as it is open: the backup carries the source's WAL mode
in its header, and SQLite opens the copy's -wal and -shm files by that name. So a process
killed during the check (SIGKILL, the OOM killer) leaves a full copy of the history in
TMPDIR. Each copy is held under flock while in use, and a sweep before the next copy removes
those whose holder is gone.

The copy and those files are made in a folder of its own that only this user may enter: in a
shared /tmp another user who saw the copy's name appear could put a link or a file of theirs
under its -shm or -wal name, and SQLite refused the link, or replayed their file as the copy's
WAL (review s18 round 2: every verify then said the index did not match its rows).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import stat
import tempfile
from collections.abc import Iterator

PREFIX = "pilothouse-verify-"
SUFFIX = ".db"  # a copy made as a bare file in TMPDIR, by earlier versions: still swept
COPY = "copy.db"  # the copy's name inside its own folder
_SIDE_FILES = ("", "-wal", "-shm", "-journal")
_TRIES = 5  # folders made for one copy, each removed by a sweep before it was locked


@contextlib.contextmanager
def snapshot_copy(conn: sqlite3.Connection, folder: str) -> Iterator[sqlite3.Connection]:
    """A connection to a copy of `conn`'s snapshot in `folder`, removed when the block ends."""
    own, fd = _own_folder(folder)
    try:
        copy = sqlite3.connect(os.path.join(own, COPY), isolation_level=None)
        try:
            copy.execute("PRAGMA journal_mode=OFF")
            conn.backup(copy)
            yield copy
        finally:
            copy.close()
    finally:
        _remove_folder(fd, own)
        os.close(fd)


def _own_folder(folder: str) -> tuple[str, int]:
    """A new folder for the copy (mode 0700: nobody else puts names in), open and locked. Until
    it is locked another process's sweep may take it for a killed check's: then it is gone
    (no links left) once the lock is had, and another is made."""
    for _ in range(_TRIES):
        own = tempfile.mkdtemp(prefix=PREFIX, dir=folder)
        try:
            fd = os.open(own, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)  # in use: no sweep takes it from now on
        if os.fstat(fd).st_nlink:
            return own, fd
        os.close(fd)
    raise OSError(f"the copy's folder in {folder} was removed {_TRIES} times before it was locked")


def sweep_left_copies(folder: str) -> list[str]:
    """Remove the copies in `folder` that this user's processes made and no longer hold (their
    holder was killed), with their side files; the names removed. Another user's files, links,
    and copies in use are left alone."""
    removed = []
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(PREFIX)]
    except OSError:
        return removed
    for entry in entries:
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            is_dir = stat.S_ISDIR(st.st_mode)
            if st.st_uid != os.geteuid() or not (is_dir or (
                    stat.S_ISREG(st.st_mode) and entry.name.endswith(SUFFIX))):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live check holds it
            if is_dir:
                _remove_folder(fd, entry.path)
            else:
                _remove(entry.path)
            removed.append(entry.name)
        finally:
            os.close(fd)
    return removed


def _remove_folder(fd: int, path: str) -> None:
    """The copy's own folder (open as fd): the copy and its side files, then the folder."""
    for side in _SIDE_FILES:
        with contextlib.suppress(OSError):
            os.unlink(COPY + side, dir_fd=fd)
    with contextlib.suppress(OSError):
        os.rmdir(path)


def _remove(name: str) -> None:
    uid = os.geteuid()
    for side in _SIDE_FILES:
        path = name + side
        with contextlib.suppress(OSError):
            if os.lstat(path).st_uid == uid:  # not a file of that name another user planted
                os.unlink(path)
