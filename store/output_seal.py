"""Run output made tamper-evident without a chain link per line.

Output lines are bulk rows: a flood of them must not slow the chain, so no line is chained
itself. Instead the writer keeps, per run, a digest of every line it stores, in the order it
stores them; the run's end event (`run.ended`, committed with `seal_output=True`) gains
`output`: the count, the digest and the oldest line's time, made in the writer in the same
transaction as the event, so a run that ended has its seal (a flood cannot crowd it out).
`audit verify` reads each sealed run's stored lines again and compares: a line changed,
removed, reordered or added after the end is found.

What the seal covers is what the store holds: a line a full queue dropped, or a failed batch
lost, was never stored and never digested. Lines for a run after its seal are not stored. A run
the daemon lost (it died first) is sealed when the next daemon marks it lost (`run.lost`), from
the lines stored by then: what changed between the crash and that start is not found. Not
covered: a run still going; a run whose lines a prune may have removed in part (its oldest line
is older than a prune's cutoff).
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from typing import Any

# The events a run's seal is committed with: its end (RunManager._finish), or its loss found at
# the next start (RunManager.reconcile).
SEALED_KINDS = ("run.ended", "run.lost")
SEALED_MAX = 100_000  # sealed runs remembered (to refuse their late lines); the oldest go first


def _framed(ts: float, stream: str | None, line: str) -> bytes:
    """One stored line as digest input: every field length-prefixed, so no line can pass for
    two, or its stream for part of its text."""
    kind = "-" if stream is None else f"{len(stream)}:{stream}"
    return f"{ts!r}|{kind}|{len(line)}:{line}\n".encode()


class _Digest:
    __slots__ = ("hash", "lines", "oldest")

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.lines = 0
        self.oldest: float | None = None

    def add(self, ts: float, stream: str | None, line: str) -> None:
        self.hash.update(_framed(ts, stream, line))
        self.lines += 1
        if self.oldest is None or ts < self.oldest:
            self.oldest = ts

    def copy(self) -> _Digest:
        other = _Digest()
        other.hash, other.lines, other.oldest = self.hash.copy(), self.lines, self.oldest
        return other

    def seal(self) -> dict[str, Any]:
        return {"lines": self.lines, "sha256": self.hash.hexdigest(), "oldest_ts": self.oldest}


class OutputDigests:
    """Every live run's digest so far. Writer thread only."""

    def __init__(self) -> None:
        self.runs: dict[str, _Digest] = {}
        self.sealed: dict[str, None] = {}  # insertion-ordered: the oldest is forgotten first
        self.late = 0  # lines refused because their run's output was already sealed

    def stage(self, conn: sqlite3.Connection) -> StagedDigests:
        return StagedDigests(self, conn)


class StagedDigests:
    """One batch's changes to the digests, applied only once its COMMIT returned: a batch
    rolled back stored nothing, so it must digest nothing."""

    def __init__(self, base: OutputDigests, conn: sqlite3.Connection) -> None:
        self._base = base
        self._conn = conn  # in the batch's transaction
        self._runs: dict[str, _Digest] = {}
        self._sealed: list[str] = []
        self._late = 0

    def _digest(self, run_id: str) -> _Digest:
        found = self._runs.get(run_id)
        if found is None:
            base = self._base.runs.get(run_id)
            found = self._runs[run_id] = base.copy() if base is not None else _Digest()
        return found

    def add(self, run_id: str, ts: float, stream: str | None, line: str) -> bool:
        """Digest a line the batch stores; False (store nothing) when its run was sealed."""
        if run_id in self._base.sealed or run_id in self._sealed:
            self._late += 1
            return False
        self._digest(run_id).add(ts, stream, line)
        return True

    def seal(self, run_id: str) -> dict[str, Any] | None:
        """The seal's data; the run takes no more lines. None when it was sealed already (its
        end handled twice): a second seal would count nothing and read as tampering."""
        if run_id in self._base.sealed or run_id in self._sealed:
            return None
        if run_id not in self._runs and run_id not in self._base.runs:
            # Nothing stored in this writer's life: a run lost in a crash is sealed from what
            # the store holds (or a run that printed nothing, from no lines).
            try:
                self._runs[run_id] = _stored(self._conn, run_id)
            except (sqlite3.Error, TypeError) as exc:
                self._sealed.append(run_id)
                return {"lines": None, "sha256": None, "oldest_ts": None,
                        "unreadable": f"{exc}"[:200]}
        data = self._digest(run_id).seal()
        self._sealed.append(run_id)
        return data

    def apply(self) -> None:
        base = self._base
        base.runs.update(self._runs)
        for run_id in self._sealed:
            base.runs.pop(run_id, None)
            base.sealed[run_id] = None
        while len(base.sealed) > SEALED_MAX:
            del base.sealed[next(iter(base.sealed))]
        base.late += self._late


def output_problem(conn: sqlite3.Connection, cutoff: float | None) -> str | None:
    """The first sealed run whose stored output is not what was sealed, or None. `cutoff`: the
    latest prune's (lines older than it may be gone), None when nothing was pruned."""
    for run_id, data_text in conn.execute(
            "SELECT run_id, data FROM events WHERE kind IN (?, ?) AND data LIKE '%\"output\":%' "
            "ORDER BY id", SEALED_KINDS):
        try:
            sealed = json.loads(data_text).get("output")
        except (ValueError, AttributeError):
            return f"run {run_id}: its end's data is not what the store writes"
        if sealed is None:
            continue
        if isinstance(sealed, dict) and sealed.get("unreadable"):
            return (f"run {run_id}: its output was not what the store writes when it was sealed "
                    f"after a restart ({sealed['unreadable']})")
        try:
            lines, sha256, oldest = sealed["lines"], sealed["sha256"], sealed["oldest_ts"]
        except (KeyError, TypeError):
            return f"run {run_id}: its output seal is not what the store writes"
        if cutoff is not None and oldest is not None and oldest < cutoff:
            continue  # a prune may have removed some of its lines
        try:
            digest = _stored(conn, run_id)
        except (sqlite3.Error, TypeError) as exc:  # invalid UTF-8 stored as text, a number...
            return f"run {run_id}: a line of its output is not what the store writes ({exc})"
        if digest.lines != lines:
            return (f"run {run_id}: its output holds {digest.lines} lines, but {lines} were sealed "
                    "when it ended: lines were removed or added since")
        if digest.hash.hexdigest() != sha256:
            return (f"run {run_id}: its output was changed after it ended (its {lines} lines no "
                    "longer match their seal)")
    return None


def unclaimed_output(conn: sqlite3.Connection, cutoff: float | None,
                     pruned: set[str] | None = None) -> str | None:
    """The first run whose stored lines no chained event names, or None: lines are stored only
    for a run whose start is recorded, so such lines were written into the file (no seal can
    catch them). A run whose events were all pruned had every line older than the cutoff, so
    only lines at or after it count, unless the chained prune note names the run (`pruned`:
    a run still going when its start was pruned goes on printing). One index seek per run
    id, not a scan of the lines."""
    run_id = conn.execute("SELECT min(run_id) FROM output").fetchone()[0]
    while run_id is not None:
        if run_id not in (pruned or ()) and not conn.execute(
                "SELECT 1 FROM events WHERE run_id = ? LIMIT 1", (run_id,)).fetchone():
            late = conn.execute("SELECT count(*) FROM output WHERE run_id = ? AND NOT ts < ?",
                                (run_id, -math.inf if cutoff is None else cutoff)).fetchone()[0]
            if late:
                return (f"run {run_id}: {late} lines of output are stored for it, but no "
                        "recorded event names that run: they were written into the file")
        run_id = conn.execute("SELECT min(run_id) FROM output WHERE run_id > ?",
                              (run_id,)).fetchone()[0]
    return None


def _stored(conn: sqlite3.Connection, run_id: str) -> _Digest:
    digest = _Digest()
    for ts, stream, line in conn.execute(
            "SELECT ts, stream, line FROM output WHERE run_id = ? ORDER BY id", (run_id,)):
        if type(ts) is not float or type(line) is not str or (
                stream is not None and type(stream) is not str):
            raise TypeError("a value of another type than the store writes")
        digest.add(ts, stream, line)
    return digest


def output_dropped(conn: sqlite3.Connection, run_id: str) -> int:
    """How many of the run's output lines a full queue dropped (never stored, so no seal or
    search shows them), as its sealed end counts them: 0 when none were, or it has not ended.
    The count is chained with the end (`audit verify` vouches for it)."""
    row = conn.execute("SELECT data FROM events WHERE run_id = ? AND kind IN (?, ?) "
                       "ORDER BY id LIMIT 1", (run_id, *SEALED_KINDS)).fetchone()
    try:
        data = json.loads(row[0] or "{}") if row is not None else {}
    except (ValueError, RecursionError, TypeError):
        return 0  # not what the store writes: verify names it
    dropped = data.get("output_dropped") if isinstance(data, dict) else None
    return dropped if type(dropped) is int and dropped > 0 else 0
