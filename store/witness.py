"""The witness: an append-only file beside the audit key that holds every committed chain head.

The signed head in the database catches rows removed from its end, but not a database put
back whole (an older copy) or given back an older signed head: both are internally
consistent. The witness lives outside the database, so `verify` can compare: a head the
witness saw that the database no longer reaches is truncation or rollback; one row id the
witness saw with two different hashes is a history rewritten after a rollback.

One JSON line per committed batch of events: {"seq", "id", "hash", "ts", "mac"}; seq grows by
one per line, mac is HMAC(key) over the rest, so lines cannot be forged without the key. A
witness deleted or truncated together with the database is not caught here: that is what a
copy off the machine is for: each line can also go to syslog (`[audit] syslog`,
store/syslog_copy.py, queued and sent off the commit path), a collector the security team
keeps (docs/threat-model.md).
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.mac import hmac_sha256

_dumps = json.JSONEncoder(separators=(",", ":")).encode
log = logging.getLogger("pilothouse.store")


def witness_mac(key: bytes, seq: int, id_: int, hash_: str, ts: float) -> str:
    return hmac_sha256(key, _dumps(["witness", seq, id_, hash_, ts]).encode())


@dataclass(frozen=True)
class Entry:
    seq: int
    id: int
    hash: str
    ts: float


class Witness:
    """The writer's side: append one line per committed head (the file is opened O_APPEND,
    0600, never through a symlink)."""

    def __init__(self, path: Path, key: bytes, mirror: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self._key = key
        self._mirror = mirror
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW,
                           0o600)
        last, self._tail_problem = last_signed(self.path, key)
        self.seq = last.seq if last is not None else 0
        self.last = last

    def append(self, id_: int, hash_: str) -> None:
        seq = self.seq + 1
        ts = round(time.time(), 6)
        line = _dumps({"seq": seq, "id": id_, "hash": hash_, "ts": ts,
                       "mac": witness_mac(self._key, seq, id_, hash_, ts)}) + "\n"
        self._write_whole(line.encode())
        self.seq = seq  # only now: a line not written leaves no gap in seq
        self.last = Entry(seq, id_, hash_, ts)
        if self._mirror is not None:
            try:
                self._mirror(line.rstrip("\n"))
            except OSError as exc:  # the local witness is written; the copy is best effort
                log.warning("audit witness copy not sent: %s", exc)

    def _write_whole(self, data: bytes) -> None:
        """Append all of `data` or none of it. A full disk writes what fits in the file's last
        page and only the next write fails: a line cut short would count as written, and then
        read as a damaged (tampered) witness, with the next line run into it."""
        start = os.fstat(self._fd).st_size
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                if n <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[n:]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)  # take the part back; the caller refuses
            raise

    def append_or_why(self, id_: int, hash_: str) -> str | None:
        """append(), or why it failed (the rows are committed; the witness fell behind)."""
        try:
            self.append(id_, hash_)
        except OSError as exc:
            log.error("audit witness not written for row %d: %s", id_, exc)
            return (f"the audit witness could not be written ({exc.strerror or exc}); nothing "
                    "more is accepted until the daemon restarts with room on its disk")
        return None

    def ahead_of(self, last_id: int, last_hash: str) -> str | None:
        """Why the database is behind what this witness saw committed, or why the witness's
        end cannot be trusted to tell (checked against its last validly signed line: a line
        appended without the key must not stand level with a database rolled back); None if
        neither."""
        seen, why = self.last, self._tail_problem
        if not (seen is None or (seen.id < last_id) or (seen.id == last_id and seen.hash == last_hash)):
            why = (f"the database ends at row {last_id} but the witness saw row {seen.id} "
                   "committed: it was truncated or rolled back" + (f"; {why}" if why else ""))
        return None if why is None else why + "; `pilothouse audit verify` says more"

    def sync(self) -> None:
        """Get the lines written so far onto the disk (called by the store's syncer)."""
        os.fdatasync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


TAIL_BYTES = 4096  # a line is ~200 bytes: the end always holds a whole one


def _entry(raw: bytes | str) -> tuple[Entry, str] | None:
    """A line as (entry, its mac), or None where it is not one: any value JSON can spell and
    Python cannot turn into the numbers (an id of 1e999) or read at all (nested past the
    parser's recursion limit) is a damaged line, never a crash of verify or of the start."""
    try:
        d: dict[str, Any] = json.loads(raw)
        return Entry(int(d["seq"]), int(d["id"]), str(d["hash"]), float(d["ts"])), str(d["mac"])
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
        return None


def last_signed(path: Path, key: bytes) -> tuple[Entry | None, str | None]:
    """The last validly signed line, read from the end (the file grows with every batch), and
    why the end is not to be trusted: a readable line after it that is not validly signed
    (appended without the key) or damaged, or an end that holds no signed line at all.
    (A full disk leaves no line cut short: Witness._write_whole takes the part back.)"""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read().splitlines()
    except FileNotFoundError:
        return None, None
    if size > TAIL_BYTES:
        tail = tail[1:]  # the first is most likely a part of a line
    problem = None
    for raw in reversed(tail):
        got = _entry(raw)
        if got is None:  # verify calls it damaged too
            problem = problem or ("the witness's last line is damaged (not a line the store "
                                  "writes)")
            continue
        e, mac = got
        if _same(mac, witness_mac(key, e.seq, e.id, e.hash, e.ts)):
            return e, problem
        problem = problem or (f"the witness's last line (seq {e.seq}, row {e.id}) is not validly "
                              "signed: it was written without the key, after the fact")
    if size:
        return None, (f"the witness's last {min(size, TAIL_BYTES)} bytes hold no validly "
                      "signed line: it was damaged or edited after the fact")
    return None, None


def _same(stored: str, expected: str) -> bool:
    return hmac.compare_digest(stored.encode("utf-8", "surrogatepass"), expected.encode())


@dataclass
class Seen:
    """What the witness says, ready to compare: the hash of each row id it saw committed,
    the highest id, and the first problem found in the file itself."""

    hashes: dict[int, str]
    top: Entry | None
    problem: tuple[int, str] | None  # (first bad id, reason)
    lines: int


def read(path: Path, key: bytes) -> Seen | None:
    """Read and check the whole witness; None when there is none."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None
    hashes: dict[int, str] = {}
    top: Entry | None = None  # the highest row id seen
    prev: Entry | None = None  # the line before
    problem: tuple[int, str] | None = None
    n = 0
    with f:
        for n, raw in enumerate(f, start=1):
            got = _entry(raw)
            if got is None:
                problem = problem or (0, f"witness line {n} is damaged")
                continue
            e, mac = got
            if not _same(mac, witness_mac(key, e.seq, e.id, e.hash, e.ts)):
                problem = problem or (e.id, f"witness line {n} is not validly signed (forged "
                                            "or written with another key)")
                continue
            if prev is not None and e.seq != prev.seq + 1 and problem is None:
                problem = (e.id, f"witness lines before seq {e.seq} are missing")
            known = hashes.get(e.id)
            if known is not None and known != e.hash and problem is None:
                problem = (e.id, f"the witness saw row {e.id} committed twice with different "
                                 f"contents (seq {e.seq}): the history was rolled back and "
                                 "rewritten")
            if top is not None and e.id < top.id and problem is None:
                problem = (e.id + 1, f"the witness saw row {top.id} committed, then row "
                                     f"{e.id} (seq {e.seq}): the database was rolled back")
            hashes[e.id] = e.hash
            prev = e
            if top is None or e.id > top.id:
                top = e
    return Seen(hashes, top, problem, n)
