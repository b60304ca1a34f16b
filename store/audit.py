"""Tamper evidence: the HMAC key, the hash chain over events, its signed head, verify and prune.

The key lives outside the database, so someone who can edit the database file but not read the
key cannot rewrite history without `verify` noticing. The chain catches edited and removed
rows; the signed head in `meta` catches rows removed from the end; signed anchors let a prefix
be pruned without breaking what follows.
"""

from __future__ import annotations

import functools
import hmac
import json
import os
import secrets
import sqlite3
import stat
from collections.abc import Callable, Collection, Generator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from store.db import FTS_OUTPUT_MARK, StoreError
from store.integrity import file_problems, foreign_schema, pruned_runs
from store.mac import hmac_sha256, keyed_states

KEY_BYTES = 32
GENESIS = "0" * 64
HEAD_KEY = "chain_head"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class KeyFileError(StoreError):
    """The audit key file is missing its protection or is damaged."""


# --- the key -----------------------------------------------------------------------------------


def load_or_create_key(path: Path) -> bytes:
    """The audit key: read it, or create it 0600 (atomically: written aside, then linked into
    place, so no reader ever sees a half-written key and two creators cannot both win)."""
    path = Path(path)
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(KEY_BYTES)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    _write_new(tmp, key)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return _read_key(path)  # someone else created it first: use theirs
    except OSError:
        # A filesystem without hard links: fall back to an exclusive create in place.
        try:
            _write_new(path, key)
        except FileExistsError:
            return _read_key(path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return key


def _write_new(path: Path, key: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(key)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_key(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise KeyFileError(f"cannot open audit key {path}: {exc.strerror}; it must be a plain "
                           "file (not a symlink) owned by you") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"audit key {path} is not a regular file")
        if st.st_uid != os.geteuid():
            raise KeyFileError(f"audit key {path} belongs to uid {st.st_uid}, not to you "
                               f"(uid {os.geteuid()}); refusing to use it")
        if st.st_mode & 0o077:
            mode = stat.S_IMODE(st.st_mode)
            raise KeyFileError(
                f"audit key {path} is open to group/others (mode {mode:04o}), so it cannot be "
                f"trusted to keep the history tamper-evident; fix it with: chmod 600 {path}"
            )
        data = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) != KEY_BYTES:
        raise KeyFileError(f"audit key {path} is damaged ({len(data)} bytes, expected "
                           f"{KEY_BYTES}); restore it from a backup. Without it the existing "
                           "history cannot be verified")
    return data


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- hashing -----------------------------------------------------------------------------------


def row_hash(key: bytes, prev: str, id_: int, ts: float, run_id: str | None, kind: str,
             actor: str | None, text: str, data: str | None) -> str:
    """The chain link of one row: HMAC-SHA256 over the previous hash, a newline and the row's
    fields as canonical JSON: [id,ts,run_id,kind,actor,text,data] with no spaces, non-ASCII
    as is, data as the exact JSON text stored."""
    return _row_hasher(key)(prev, id_, ts, run_id, kind, actor, text, data)


def row_hasher(key: bytes) -> Callable[[str, int, float, str | None, str, str | None, str,
                                        str | None], str]:
    """row_hash with the key bound, for a loop over many rows (the writer's batch, verify).
    (The JSON is formatted by hand because this is the writer's hot path; the test suite
    checks it equals json.dumps.)"""
    inner, outer = keyed_states(key)
    new_inner, new_outer = inner.copy, outer.copy

    def link(prev: str, id_: int, ts: float, run_id: str | None, kind: str, actor: str | None,
             text: str, data: str | None) -> str:
        try:
            msg = (f"{prev}\n[{id_:d},{_float(ts)},{'null' if run_id is None else _enc(run_id)},"
                   f"{_enc(kind)},{'null' if actor is None else _enc(actor)},{_enc(text)},"
                   f"{'null' if data is None else _enc(data)}]")
        except (TypeError, ValueError):  # odd types in a tampered row: a hash that cannot match
            msg = f"{prev}\n" + json.dumps([id_, ts, run_id, kind, actor, text, data], default=repr)
        h = new_inner()
        h.update(msg.encode("utf-8", "surrogatepass"))
        o = new_outer()
        o.update(h.digest())
        return o.hexdigest()

    return link


_row_hasher = functools.lru_cache(maxsize=8)(row_hasher)
_enc = json.encoder.encode_basestring  # the C JSON string encoder json.dumps itself uses
_float = float.__repr__  # how json.dumps writes a float; raises TypeError for anything else


def chain_hash(key: bytes, prev_hash: str, row: Mapping[str, Any]) -> str:
    """Chain hash of a row given as a mapping with id, ts, run_id, kind, actor, text, data."""
    return row_hash(key, prev_hash, row["id"], row["ts"], row["run_id"], row["kind"],
                    row["actor"], row["text"], row["data"])


def _mac(key: bytes, *fields: Any) -> str:
    return hmac_sha256(key, _dumps(list(fields)).encode())


def head_mac(key: bytes, last_id: int, last_hash: str) -> str:
    return _mac(key, "head", last_id, last_hash)


def anchor_sig(key: bytes, anchor_id: int, upto_id: int, upto_hash: str, pruned: int,
               ts: float) -> str:
    return _mac(key, "anchor", anchor_id, upto_id, upto_hash, pruned, ts)


def read_head(conn: sqlite3.Connection) -> dict[str, Any] | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (HEAD_KEY,)).fetchone()
    if row is None:
        return None
    try:
        head = json.loads(row[0])
        return {"id": int(head["id"]), "hash": str(head["hash"]), "mac": str(head["mac"])}
    # OverflowError: an id of 1e999; RecursionError: a value nested past the parser
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
        return {"id": -1, "hash": "", "mac": ""}


def write_head(conn: sqlite3.Connection, key: bytes, last_id: int, last_hash: str) -> None:
    """Record the chain's end, signed, in the same transaction as the rows it covers."""
    value = _dumps({"id": last_id, "hash": last_hash, "mac": head_mac(key, last_id, last_hash)})
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (HEAD_KEY, value))


def chain_start(conn: sqlite3.Connection, key: bytes) -> tuple[int, str, str | None]:
    """Where the writer continues the chain: (last id, last hash, warning or None).

    A valid signed head wins over the table's last row, so rows removed from the end stay a
    visible gap instead of being papered over by new rows.
    """
    head = read_head(conn)
    if head is not None and _same(head["mac"], head_mac(key, head["id"], head["hash"])):
        # The head is written in the transaction of the rows it signs: a row past it was put
        # there by someone else. Numbering on from the head would collide with it on every
        # commit (no start, no verify); go on after it and say so, verify names it.
        extra = conn.execute("SELECT min(id), max(id) FROM events WHERE id > ?",
                             (head["id"],)).fetchone()
        if extra[1] is None:
            return head["id"], head["hash"], None
        last = conn.execute("SELECT hash FROM events WHERE id = ?", (extra[1],)).fetchone()
        rows = f"row {extra[0]}" if extra[0] == extra[1] else f"rows {extra[0]}..{extra[1]}"
        return extra[1], str(last[0]), (
            f"{rows} past the signed chain head (row {head['id']}) were not written by the "
            f"store's writer: someone edited the file; continuing after row {extra[1]}")
    last = conn.execute("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
    anchor = conn.execute("SELECT upto_id, upto_hash FROM anchors ORDER BY id DESC LIMIT 1").fetchone()
    if last is None and anchor is None and head is None:
        return 0, GENESIS, None
    if last is not None:
        start = (last[0], last[1])
    elif anchor is not None:
        start = (anchor[0], anchor[1])
    else:
        start = (0, GENESIS)
    why = "missing" if head is None else "not validly signed"
    return start[0], start[1], f"the signed chain head was {why}; continuing after row {start[0]}"


# --- verify ------------------------------------------------------------------------------------


def _same(stored: Any, expected: str) -> bool:
    """Constant-time comparison that survives whatever a tampered column holds."""
    return hmac.compare_digest(str(stored).encode("utf-8", "surrogatepass"), expected.encode())


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of `verify`. first_bad_id is the first event id that is missing or wrong."""

    ok: bool
    checked: int
    first_bad_id: int | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify(db: sqlite_utils.Database | sqlite3.Connection, key: bytes, *,
           witness: Path | None = None, live_states: Collection[str] | None = None) -> VerifyResult:
    """Recompute the whole chain from the newest anchor (or the start) in one read snapshot,
    and compare it with the witness file (store/witness.py) when one is given. `live_states`
    (the daemon's run states before an end): a runs row in another state with no recorded end
    is named too."""
    from store import witness as witness_mod  # it builds on this module's HMAC

    seen = witness_mod.read(witness, key) if witness is not None else None
    conn = db.conn if isinstance(db, sqlite_utils.Database) else db
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        # Schema objects first: a view standing in for `events` would make the walk never end.
        # Then the chain, which names the first bad row; then what it cannot vouch for (an
        # index that hides a row from a filter or a search).
        foreign = foreign_schema(conn)
        if foreign:
            return VerifyResult(False, 0, None, "the database holds schema objects the store "
                                "never made: " + "; ".join(foreign[:5]))
        result = _verify(conn, key, seen.hashes if seen else {})
        if result.ok and (problem := file_problems(conn, live_states)) is not None:
            return VerifyResult(False, result.checked, None, problem)
        if not result.ok or witness is None:
            return result
        return _compare_witness(result, seen, _chain_end(conn))
    finally:
        if own and conn.in_transaction:
            conn.execute("ROLLBACK")


def _rows(conn: sqlite3.Connection, cur: sqlite3.Cursor) -> Any:
    """The cursor's rows; where a row cannot be read as text, (None, its id, ...) and stop."""
    last = -1
    while True:
        try:
            row = next(cur)
        except StopIteration:
            return
        except sqlite3.OperationalError:  # "Could not decode to UTF-8"
            bad = conn.execute("SELECT min(id) FROM events WHERE id > ?", (last,)).fetchone()[0]
            yield (None, bad, *([None] * 7))
            return
        last = row[0]
        yield row


def _verify(conn: sqlite3.Connection, key: bytes, witnessed: dict[int, str]) -> VerifyResult:
    expected_id, prev = 1, GENESIS
    last_upto = 0
    anchors = conn.execute(
        "SELECT id, upto_id, upto_hash, pruned, ts, sig FROM anchors ORDER BY id").fetchall()
    for aid, upto_id, upto_hash, pruned, ts, sig in anchors:
        try:
            good = _same(sig, anchor_sig(key, aid, upto_id, upto_hash, pruned, ts))
            upto_id = int(upto_id)
        except (TypeError, ValueError):
            return VerifyResult(False, 0, last_upto + 1, f"prune anchor {aid} is malformed")
        if not good:
            return VerifyResult(False, 0, upto_id + 1,
                                f"prune anchor {aid} (up to row {upto_id}) is not validly signed")
        if upto_id <= last_upto:
            return VerifyResult(False, 0, upto_id + 1,
                                f"prune anchor {aid} goes back to row {upto_id}, before {last_upto}")
        if upto_id in witnessed and witnessed[upto_id] != upto_hash:
            return VerifyResult(False, 0, upto_id, _REWRITTEN.format(id=upto_id))
        last_upto = upto_id
        expected_id, prev = upto_id + 1, upto_hash
    checked = 0
    link = row_hasher(key)
    cur = conn.execute(
        "SELECT id, ts, run_id, kind, actor, text, data, prev, hash FROM events ORDER BY id")
    for id_, ts, run_id, kind, actor, text, data, row_prev, row_h in _rows(conn, cur):
        if id_ is None:  # a row SQLite cannot give back as text
            return VerifyResult(False, checked, ts, f"row {ts} holds text that is not UTF-8: it "
                                "was altered (the store writes only UTF-8)")
        if id_ < expected_id:
            where = (f"the prune anchor at row {expected_id - 1}" if last_upto else
                     "row 1, where the chain starts")
            return VerifyResult(False, checked, id_, f"row {id_} lies before {where}")
        if id_ > expected_id:
            gap = f"row {expected_id}" if id_ == expected_id + 1 else f"rows {expected_id}..{id_ - 1}"
            return VerifyResult(False, checked, expected_id,
                                f"{gap} missing (row {id_} follows row {expected_id - 1})")
        if row_prev != prev:
            return VerifyResult(False, checked, id_,
                                f"row {id_} does not link to row {id_ - 1} (prev hash differs)")
        if not _same(row_h, link(prev, id_, ts, run_id, kind, actor, text, data)):
            return VerifyResult(False, checked, id_,
                                f"row {id_} was altered (its hash does not match its contents)")
        if id_ in witnessed and witnessed[id_] != row_h:
            return VerifyResult(False, checked, id_, _REWRITTEN.format(id=id_))
        checked += 1
        expected_id, prev = id_ + 1, row_h
    last_id = expected_id - 1
    head = read_head(conn)
    if head is None:
        if checked == 0 and not anchors:
            return VerifyResult(True, 0, None, "empty history")
        return VerifyResult(False, checked, last_id + 1, "the signed chain head is missing")
    if not _same(head["mac"], head_mac(key, head["id"], head["hash"])):
        return VerifyResult(False, checked, last_id + 1, "the chain head is not validly signed")
    if head["id"] > last_id:
        span = f"row {head['id']}" if head["id"] == last_id + 1 else f"rows {last_id + 1}..{head['id']}"
        return VerifyResult(False, checked, last_id + 1,
                            f"{span} at the end were removed (signed head is row {head['id']})")
    if head["id"] < last_id or head["hash"] != prev:
        return VerifyResult(False, checked, head["id"] + 1,
                            f"rows after the signed head (row {head['id']}) were not written by "
                            "the store writer")
    note = f" from prune anchor at row {last_upto}" if anchors else ""
    rows = "1 row" if checked == 1 else f"{checked} rows"
    return VerifyResult(True, checked, None, f"{rows} verified{note}")


_REWRITTEN = ("row {id} differs from the row the witness saw committed: the history was "
              "rolled back to an older copy and rewritten")


def _chain_end(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(id) FROM events").fetchone()
    anchor = conn.execute("SELECT max(upto_id) FROM anchors").fetchone()
    return max(row[0] or 0, anchor[0] or 0)


def _compare_witness(result: VerifyResult, seen: Any, last_id: int) -> VerifyResult:
    """The chain is whole; does it reach as far as the witness saw, unrewritten?"""
    if seen is None:
        if last_id == 0:
            return result
        return VerifyResult(True, result.checked, None, f"{result.reason}; no witness file, so "
                            "a rollback of the whole database cannot be ruled out")
    if seen.problem is not None:
        bad, why = seen.problem
        return VerifyResult(False, result.checked, bad or None, why)
    top = seen.top
    if top is not None and top.id > last_id:
        return VerifyResult(False, result.checked, last_id + 1, (
            f"the witness saw row {top.id} committed (seq {top.seq}) but the database ends at "
            f"row {last_id}: rows were truncated or the database was rolled back to an older "
            "copy"))
    lines = "1 head" if seen.lines == 1 else f"{seen.lines} heads"
    return VerifyResult(True, result.checked, None, f"{result.reason}; agrees with the "
                        f"witness ({lines})")


# --- prune -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed. anchor_id is the newest anchor written (None: nothing pruned)."""

    pruned: int
    anchor_id: int | None
    output_pruned: int = 0
    upto_id: int | None = None
    older_than_ts: float | None = None  # the cutoff: a run started after it was never pruned
    runs_pruned: list[str] | None = None  # runs with a row whose recorded start was removed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def prune_steps(conn: sqlite3.Connection, key: bytes, older_than_ts: float, *,
                chunk: int = 20_000, now: float) -> Generator[None, None, PruneResult]:
    """Prune as a series of steps; the writer wraps each step in its own transaction and may
    run other batches between them, so security events are not held up by a long prune.

    Events: the longest prefix whose rows are all older than the cutoff, removed chunk by
    chunk, each chunk leaving a signed anchor (upto id and hash) in the same transaction.
    Output: every line older than the cutoff.
    """
    now = float(now)
    first_new = conn.execute("SELECT min(id) FROM events WHERE ts >= ?", (older_than_ts,)).fetchone()[0]
    if first_new is None:
        first_new = (conn.execute("SELECT max(id) FROM events").fetchone()[0] or 0) + 1
    boundary = first_new - 1
    pruned, anchor_id, out_pruned = 0, None, 0
    known = pruned_runs(conn)  # carried on: the names of earlier prunes, whose notes may go now
    runs_pruned: set[str] = set()
    upto_done: int | None = None
    last = conn.execute("SELECT upto_id, upto_hash FROM anchors ORDER BY id DESC LIMIT 1").fetchone()
    at, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
    link = row_hasher(key)
    while True:
        lo = conn.execute("SELECT min(id) FROM events").fetchone()[0]
        if lo is None or lo > boundary:
            break
        upto = min(boundary, lo + chunk - 1)
        # An anchor vouches for the rows it stands for: only rows whose chain holds are
        # deleted under one, so a prune never signs over rows removed from the middle, or
        # over young rows whose time was set back to fall before the cutoff.
        for id_, ts, run_id, kind, actor, text, data, row_prev, row_h in conn.execute(
                "SELECT id, ts, run_id, kind, actor, text, data, prev, hash FROM events "
                "WHERE id <= ? ORDER BY id", (upto,)):
            if id_ != at or row_prev != prev or not _same(
                    row_h, link(prev, id_, ts, run_id, kind, actor, text, data)):
                raise StoreError(f"nothing was pruned from row {at} on: the history's chain is "
                                 f"broken there (run `pilothouse audit verify`); an anchor "
                                 "would hide that")
            at, prev = id_ + 1, row_h
        row = conn.execute("SELECT id, hash FROM events WHERE id <= ? ORDER BY id DESC LIMIT 1",
                           (upto,)).fetchone()
        upto, upto_hash = row
        # Named in the prune's note: verify excuses a row without a recorded start only then.
        runs_pruned.update(r[0] for r in conn.execute(
            "SELECT run_id FROM events WHERE id <= ? AND kind = 'run.started' AND run_id IN "
            "(SELECT id FROM runs)", (upto,)))
        deleted = conn.execute("DELETE FROM events WHERE id <= ?", (upto,)).rowcount
        anchor_id = (conn.execute("SELECT max(id) FROM anchors").fetchone()[0] or 0) + 1
        conn.execute("INSERT INTO anchors (id, upto_id, upto_hash, pruned, ts, sig) VALUES "
                     "(?, ?, ?, ?, ?, ?)", (anchor_id, upto, upto_hash, deleted, now,
                                            anchor_sig(key, anchor_id, upto, upto_hash, deleted, now)))
        pruned += deleted
        upto_done = upto
        yield
    while True:
        n = conn.execute("DELETE FROM output WHERE id IN (SELECT id FROM output WHERE ts < ? "
                         "ORDER BY id LIMIT ?)", (older_than_ts, chunk)).rowcount
        # Emptied, the table's next ids start over at 1, below the search index's mark: the
        # mark comes back with it, or new lines would count as indexed and never be found.
        conn.execute("UPDATE meta SET value = (SELECT coalesce(max(id), 0) FROM output) "
                     "WHERE key = ? AND CAST(value AS INTEGER) > (SELECT coalesce(max(id), 0) "
                     "FROM output)", (FTS_OUTPUT_MARK,))
        out_pruned += n
        if n < chunk:
            break
        yield
    return PruneResult(pruned, anchor_id, out_pruned, upto_done, older_than_ts,
                       None if known is None else sorted(known | runs_pruned))
