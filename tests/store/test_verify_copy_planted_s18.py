"""Attack review s18, round 2: the search index check's temporary copy in a shared TMPDIR.

The copy is a WAL-mode file (the backup carries the history's mode), so SQLite opens its `-wal`
and `-shm` files by the copy's name, in the same folder. In a shared /tmp any local user sees
that name appear (inotify) and, during the backup, may put their own files or links there under
those names: SQLite then refuses a linked `-shm` (`unable to open database file`), and takes an
existing `-wal` for its own (it replays the frames found there, after making the file its own).
Every `audit verify` of a root daemon could so be made to say the index could not be checked,
or be made to check pages the user wrote. The user here plants a link and a file at the moment
the copy is opened, as such a user would; the check must not care.

Needs root and the test user phoutsider (as the other tests of a teammate).
"""

from __future__ import annotations

import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from store import audit, snapshot_copy
from store.db import open_db
from store.writer import StoreWriter


def _outsider() -> tuple[int, int]:
    try:
        p = pwd.getpwnam("phoutsider")
    except KeyError:
        pytest.skip("no user phoutsider")
    return p.pw_uid, p.pw_gid


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder like /tmp: world-writable with the sticky bit, reachable by every user."""
    folder = Path(tempfile.mkdtemp(prefix="r18-shared-", dir="/tmp"))
    folder.chmod(0o1777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _plant_as_outsider(db_name: str, victim: Path) -> None:
    """What another user does beside a copy they saw appear: a link as its -shm, a file of
    theirs (a stale WAL header) as its -wal. Where they may not write, nothing is planted."""
    uid, gid = _outsider()
    subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "sh", "-c",
                    'ln -s "$2" "$1-shm"; printf "%s" "not a wal" > "$1-wal"; chmod 666 "$1-wal"',
                    "sh", db_name, str(victim)], capture_output=True, check=False)


def test_names_another_user_plants_beside_the_copy_change_nothing(
        make_writer: Callable[..., StoreWriter], db_path: Path, key: bytes, shared_tmp: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    w = make_writer()
    for i in range(20):
        w.commit("approval.decided", run_id="r1", actor="alice", text=f"secret command {i}")
    w.close()
    victim = shared_tmp.parent / f"{shared_tmp.name}-victim"
    victim.write_text("a root file the link points at\n")
    real_connect = sqlite3.connect
    planted = []

    def connect_and_plant(name: str, *args: object, **kwargs: object) -> sqlite3.Connection:
        if str(name).startswith(f"{shared_tmp}/"):  # the copy, wherever in TMPDIR it is made
            _plant_as_outsider(str(name), victim)
            planted.append(str(name))
        return real_connect(name, *args, **kwargs)

    monkeypatch.setattr(snapshot_copy.sqlite3, "connect", connect_and_plant)
    monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
    db = open_db(db_path, readonly=True)
    try:
        result = audit.verify(db, key)
    finally:
        db.close()
    assert victim.read_text() == "a root file the link points at\n"
    victim.unlink()
    assert result.ok, result.reason
    assert planted, "the copy was never opened"
    left = [p for p in shared_tmp.iterdir() if p.stat(follow_symlinks=False).st_uid == os.geteuid()]
    assert left == [], left


def test_the_sweep_takes_only_this_users_left_copies(shared_tmp: Path, tmp_path: Path) -> None:
    """Left copies of this user go (a folder of its own, or a bare file of an earlier version);
    another user's folder, a link to a folder of ours and a copy still held stay."""
    import fcntl

    uid, gid = _outsider()
    left_dir = shared_tmp / f"{snapshot_copy.PREFIX}left"
    left_dir.mkdir()
    (left_dir / snapshot_copy.COPY).write_text("history")
    (left_dir / f"{snapshot_copy.COPY}-wal").write_text("wal")
    left_file = shared_tmp / f"{snapshot_copy.PREFIX}old.db"
    left_file.write_text("history")
    theirs = shared_tmp / f"{snapshot_copy.PREFIX}theirs"
    subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "mkdir",
                    str(theirs)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / snapshot_copy.COPY).write_text("not a copy")
    (shared_tmp / f"{snapshot_copy.PREFIX}link").symlink_to(elsewhere)
    held = shared_tmp / f"{snapshot_copy.PREFIX}held"
    held.mkdir()
    fd = os.open(held, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        removed = snapshot_copy.sweep_left_copies(str(shared_tmp))
    finally:
        os.close(fd)
    assert sorted(removed) == sorted([left_dir.name, left_file.name])
    assert sorted(p.name for p in shared_tmp.iterdir()) == sorted(
        [theirs.name, f"{snapshot_copy.PREFIX}link", held.name])
    assert (elsewhere / snapshot_copy.COPY).read_text() == "not a copy"
