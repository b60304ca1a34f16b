"""What the chain cannot vouch for in the database file, checked by `audit verify` (and the
schema by the writer at its start).

The chain covers the rows of `events`; the file holds more that a person relies on. A trigger
or view planted in the file runs on, or stands in for a table of, the store's own connections
(a BEFORE INSERT trigger that drops a decision the writer then reports committed; a view named
`events` without end). An index that disagrees with its table hides a row from a filter
(`history --kind`), a full-text index that lost a row hides it from a search, and a full-text
mark past the last row keeps every new row out of search. Nothing here needs the key.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Collection, Iterator
from typing import Any

from store.fts import TABLES, index_off, marks
from store.output_seal import output_problem, unclaimed_output
from store.runs_table import usage_counts
from store.snapshot_copy import snapshot_copy, sweep_left_copies
from store.trace_requests import trace_problem, unclaimed_trace
from store.values import read_number

# SQLite's own objects only: a row named sqlite_x written into sqlite_master by hand is loaded
# like any other trigger, so the prefix alone excuses nothing.
_SCHEMA = ("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master WHERE NOT ("
           "(type = 'index' AND name LIKE 'sqlite\\_autoindex\\_%' ESCAPE '\\' AND sql IS NULL) OR "
           "(type = 'table' AND name IN ('sqlite_sequence', 'sqlite_stat1', 'sqlite_stat2', "
           "'sqlite_stat3', 'sqlite_stat4')))")


@functools.lru_cache(maxsize=1)
def expected_schema() -> frozenset[tuple[str, str, str, str]]:
    """Every schema object the migrations make, read back from a database made in memory."""
    import sqlite_utils

    from store.db import migrate

    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(sqlite_utils.Database(conn))
        return frozenset(_normal(row) for row in conn.execute(_SCHEMA))
    finally:
        conn.close()


def _normal(row: tuple[str, str, str, str]) -> tuple[str, str, str, str]:
    kind, name, table, sql = row
    return kind, name, table, " ".join(sql.split())


def foreign_schema(conn: sqlite3.Connection) -> list[str]:
    """Schema objects the store did not make, or made otherwise, or that are gone: one line
    each (`trigger drop_decisions on events`). Empty for a file as the migrations left it."""
    have = {_normal(row) for row in conn.execute(_SCHEMA)}
    want = expected_schema()
    names = {(k, n) for k, n, _, _ in want}
    out = [f"{k} {n} on {t}" + (" (changed)" if (k, n) in names else "")
           for k, n, t, _ in sorted(have - want)]
    have_names = {(k, n) for k, n, _, _ in have}
    out += [f"{k} {n} on {t} (missing)" for k, n, t, _ in sorted(want) if (k, n) not in have_names]
    return out


def refuse_foreign(conn: sqlite3.Connection, path: object) -> None:
    """StoreError when the file holds schema objects the store never made: the writer's
    connection would run a planted trigger on every batch."""
    from store.db import StoreError

    foreign = foreign_schema(conn)
    if foreign:
        raise StoreError(f"the history database {path} holds schema objects Pilothouse never "
                         f"made ({'; '.join(foreign[:3])}): it was altered. Run `pilothouse "
                         "audit verify`, and move the file aside to start a new history")


def file_problems(conn: sqlite3.Connection,
                  live_states: Collection[str] | None = None) -> str | None:
    """Why the file cannot be trusted beyond its chain, or None: the database's own integrity
    check (indexes that disagree with their tables), full-text indexes that do not hold
    exactly the rows up to their marks. (foreign_schema comes first, on its own.)"""
    check = [row[0] for row in conn.execute("PRAGMA integrity_check(20)")]
    if check != ["ok"]:
        return "the database's own integrity check fails: " + "; ".join(check[:3])
    if (run := runs_off(conn, live_states=live_states) or totals_off(conn)) is not None:
        return run
    cutoff, pruned = prune_cutoff(conn), pruned_runs(conn)
    if (output := output_problem(conn, cutoff) or unclaimed_output(conn, cutoff, pruned)
            or trace_problem(conn) or unclaimed_trace(conn, cutoff, pruned)) is not None:
        return output
    if (fts := fts_check(conn)) is not None:
        return fts
    for table, _mark, _cols in TABLES:
        off = index_off(conn, table)
        if off is not None:
            return (f"the search index of {table} does not hold the rows it covers ({off[0]} "
                    f"indexed, {off[1]} up to its mark): a search may not show every row")
    return unindexed(conn)


UNINDEXED_AFTER_S = 60.0  # far past fts.SEARCH_BOUND_S: a row this old should be searchable


def unindexed(conn: sqlite3.Connection, now: float | None = None) -> str | None:
    """Rows past the index's mark that are older than UNINDEXED_AFTER_S: a search does not
    show them. A lowered mark (with the index entries above it taken out) would otherwise hide
    lines from search with every count agreeing; a crash can leave them too, until the
    writer's next start indexes them."""
    import time

    before = (time.time() if now is None else now) - UNINDEXED_AFTER_S
    for (table, _mark, _cols), upto in zip(TABLES, marks(conn), strict=True):
        late = conn.execute(f"SELECT count(*) FROM {table} WHERE id > ? AND ts < ?",
                            (upto, before)).fetchone()[0]
        if late:
            return (f"{late} rows of {table} older than {UNINDEXED_AFTER_S:g} s are not in its "
                    "search index: a search does not show them (the daemon indexes them when "
                    "it next starts; if it is running, their index mark was moved back)")
    return None


def runs_off(conn: sqlite3.Connection, run_id: str | None = None, *,
             live_states: Collection[str] | None = None) -> str | None:
    """The first row of `runs` (what `ps`, `report` and the console show) that its chained
    events say otherwise about, naming the run and the field: the profile, backend, workspace,
    command, start time and actor of `run.started`; the state, exit code, end time and notes of
    `run.ended` (`run.lost`: the state, end time and, when recorded, exit code). A row in an
    ended state whose end is not recorded (given `live_states`, the daemon's: the store does
    not define run states), and a recorded start and end whose row is gone, are named too
    (rows are never deleted).
    Times and notes are compared where the event holds them (events of earlier versions do
    not). Runs whose events were pruned cannot be checked. With `run_id`, that run alone (what
    `report` warns of; the chain of its events is `audit verify`'s to check)."""
    ids = None if run_id is None else [run_id]
    with one_snapshot(conn):
        return next((why for _rid, why in _runs_off(conn, ids, live_states)), None)


def runs_off_each(conn: sqlite3.Connection, run_ids: Collection[str], *,
                  live_states: Collection[str] | None = None) -> dict[str, str]:
    """runs_off for each of `run_ids` (the rows `ps` shows): run id -> why its row is not what
    its recorded events say; runs whose rows agree are left out."""
    if not run_ids:
        return {}
    with one_snapshot(conn):
        return dict(_runs_off(conn, list(run_ids), live_states))


@contextlib.contextmanager
def one_snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """The reads inside see one state of the file (a run's row and its end are committed
    together: read apart, a commit between them reads as a row with no recorded end). Inside
    a transaction already, that one."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _runs_off(conn: sqlite3.Connection, run_ids: list[str] | None,
              live_states: Collection[str] | None) -> Iterator[tuple[str, str]]:
    """(run id, why) for each run, of all or of `run_ids`, whose row the chain says otherwise
    about: the first thing wrong with it (see runs_off)."""
    import json

    only = None if run_ids is None else json.dumps(run_ids)
    told: dict[str, list[tuple[str, str | None, Any]]] = {}
    for rid, kind, actor, data_text in conn.execute(
            "SELECT run_id, kind, actor, data FROM events WHERE kind IN ('run.started', "
            "'run.ended', 'run.lost') AND (?1 IS NULL OR run_id IN (SELECT value FROM "
            "json_each(?1))) ORDER BY id", (only,)):
        try:
            data = json.loads(data_text or "{}")
        except (ValueError, RecursionError):  # chained: verify named an edit before this
            data = {}
        told.setdefault(rid, []).append((kind, actor, data if isinstance(data, dict) else {}))
    pruned = conn.execute("SELECT count(*) FROM anchors").fetchone()[0] > 0
    # A start can be missing only when a prune removed it: one its note names, or (notes of
    # earlier versions, a prune cut short) when the run started before a prune's cutoff. A
    # prune removes a prefix, so a recorded start's end is never pruned.
    cutoff = prune_cutoff(conn)
    named = pruned_runs(conn)
    for row in conn.execute("SELECT id, profile, backend, state, command, workspace, exit_code, "
                            "started_at, ended_at, info FROM runs WHERE ?1 IS NULL OR id IN "
                            "(SELECT value FROM json_each(?1))", (only,)):
        rid, started_at = row[0], row[7]
        events = told.pop(rid, [])
        could_be_pruned = pruned and (rid in named if named is not None else (
            cutoff is not None and (not isinstance(started_at, (int, float)) or started_at < cutoff)))
        why = _row_off(row, events, live_states, could_be_pruned)
        if why is not None:
            yield rid, f"run {rid}: {why}"
    for rid, events in told.items():  # a start and an end recorded, and no row
        kinds = {kind for kind, _actor, _data in events}
        if "run.started" in kinds and len(kinds) > 1:
            yield rid, f"run {rid}: its end is recorded but its row in the runs table is gone"


def _row_off(row: tuple[Any, ...], events: list[tuple[str, str | None, Any]],
             live_states: Collection[str] | None, could_be_pruned: bool) -> str | None:
    """Why one runs row is not what its recorded events say, or None."""
    import json

    _rid, profile, backend, state, command, workspace, exit_code, started_at, ended_at, info = row
    try:
        row_command = json.loads(command or "null")
        row_info = json.loads(info or "{}")
    except (ValueError, RecursionError):  # RecursionError: nested past the parser
        return "its row in the runs table is not what the store writes"
    if not isinstance(row_info, dict):
        return "its row's info is not what the store writes"
    started = ended = False
    for kind, actor, data in events:
        if kind == "run.started":
            started = True
            said = (data.get("profile"), data.get("backend"), data.get("workspace"), data.get("command"))
            if said != (profile, backend, workspace, row_command):
                return ("its row in the runs table (profile, backend, workspace or command) "
                        "differs from its recorded start")
            if "started_at" in data and data["started_at"] != started_at:
                return "its row's started_at differs from its recorded start"
            if row_info.get("actor") != actor:
                return "its row's info (actor) differs from its recorded start"
            continue
        ended = True
        if kind == "run.ended" and (data.get("state"), data.get("exit_code")) != (state, exit_code):
            return "its row's state or exit code differs from its recorded end"
        if kind == "run.lost" and (state != "lost" or (
                "exit_code" in data and data["exit_code"] != exit_code)):
            return "its row's state or exit code differs from its recorded end (lost)"
        if "ended_at" in data and data["ended_at"] != ended_at:
            return "its row's ended_at differs from its recorded end"
        if kind == "run.ended" and "notes" in data and data["notes"] != row_info.get("notes"):
            return "its row's info (notes) differs from its recorded end"
    if started and not ended and live_states is not None and state not in live_states:
        return (f"its row's state says it ended ({state}) but no end is recorded (if its notes "
                "say the end could not be recorded, that is why)")
    if not started and not could_be_pruned:  # a row is written only after its start is
        return "in the runs table, but its start was never recorded"
    return None


def totals_off(conn: sqlite3.Connection) -> str | None:
    """The first run whose row's totals (what `report`, `gpu` and the console show) its
    chained events rule out, naming the run and the field: token counts more than its
    recorded `tokens` events add up to (the GPU service counts those same events, each stored
    before it is counted; a note while the run was live that rows were dropped or lost excuses
    it, and a run whose start was pruned is not summed), or counts or energy less than its
    recorded end says the row held then (`tokens_at_end`, `energy_j_at_end`: totals only grow).
    Fewer tokens than the events add up to is no finding by itself: the service may not have
    counted them all (a full bus, a daemon that stopped). Energy is measured, not chained, so
    energy raised after the end is not found; nor is the cost, derived with the prices."""
    import json

    sums: dict[str, list[int]] = {}
    for rid, data_text in conn.execute("SELECT run_id, data FROM events WHERE kind = 'tokens' "
                                       "AND run_id IS NOT NULL"):
        counted = _counted(data_text)
        if counted is not None:
            got = sums.setdefault(rid, [0, 0])
            got[0], got[1] = got[0] + counted[0], got[1] + counted[1]
    starts = dict(conn.execute("SELECT run_id, min(id) FROM events WHERE kind = 'run.started' "
                               "GROUP BY run_id"))
    ends = dict(conn.execute("SELECT run_id, min(id) FROM events WHERE kind IN ('run.ended', "
                             "'run.lost') GROUP BY run_id"))
    notes = [i for (i,) in conn.execute("SELECT id FROM events WHERE kind IN ('store.dropped', "
                                        "'store.write_failed') ORDER BY id")]

    def excused(rid: str) -> bool:
        """A note of rows dropped or lost while the run was live: a batch opens with the notes
        of what was dropped before it, so those of a run's rows come before its end."""
        after = bisect.bisect_right(notes, starts[rid])
        return after < len(notes) and (rid not in ends or notes[after] < ends[rid])

    at_end: dict[str, dict[str, Any]] = {}
    for rid, data_text in conn.execute("SELECT run_id, data FROM events WHERE kind IN "
                                       "('run.ended', 'run.lost') AND (data LIKE "
                                       "'%\"tokens_at_end\":%' OR data LIKE "
                                       "'%\"energy_j_at_end\":%')"):
        try:
            data = json.loads(data_text)
        except (ValueError, TypeError, RecursionError):
            continue  # chained: the store wrote it so, verify named an edit before this
        if isinstance(data, dict):
            least = data.get("tokens_at_end")
            least = dict(least) if isinstance(least, dict) else {}
            least["energy_j"] = data.get("energy_j_at_end")
            at_end[rid] = least
    for rid, tokens_in, tokens_out, energy_j in conn.execute(
            "SELECT id, tokens_in, tokens_out, energy_j FROM runs"):
        least = at_end.get(rid, {})
        for i, (field, value) in enumerate(zip(("tokens_in", "tokens_out"),
                                               (tokens_in, tokens_out), strict=True)):
            floor = least.get(field)
            if not isinstance(value, int) or isinstance(value, bool):
                # Shown as unknown (store.history), or as none by a report: a count its end
                # recorded, erased so, is a finding like one lowered.
                if isinstance(floor, int):
                    return (f"run {rid}: its row's {field} is not a count ({value!r}), but its "
                            f"recorded end says it held {floor}")
                continue
            summed = sums.get(rid, [0, 0])[i]
            if rid in starts and value > summed and not excused(rid):
                return (f"run {rid}: its row's {field} ({value}) is more than its recorded "
                        f"tokens events add up to ({summed})")
            if isinstance(floor, int) and value < floor:
                return (f"run {rid}: its row's {field} ({value}) is less than its recorded end "
                        f"says it held then ({floor})")
        energy, floor = read_number(energy_j), read_number(least.get("energy_j"))
        if floor is not None and energy is None:
            return (f"run {rid}: its row's energy_j is not a number ({energy_j!r}), but its "
                    f"recorded end says it held {floor:g}")
        if energy is not None and floor is not None and energy < floor:
            return (f"run {rid}: its row's energy_j ({energy:g}) is less than its recorded "
                    f"end says it held then ({floor:g})")
    return None


def _counted(data_text: str | None) -> tuple[int, int] | None:
    """(prompt, completion) of one recorded `tokens` event as the GPU service counts it
    (runs_table.usage_counts, the rule both use), or None where it counts nothing."""
    import json

    try:
        ev = json.loads(data_text or "{}")
        return usage_counts(ev.get("prompt_tokens"), ev.get("completion_tokens"),
                            ev.get("total_tokens"))
    except (ValueError, TypeError, AttributeError, OverflowError, RecursionError):
        return None


def pruned_runs(conn: sqlite3.Connection) -> set[str] | None:
    """The runs with a row whose recorded start a prune removed, as the newest chained
    store.pruned note names them (each note carries the names of the prunes before it); empty
    when nothing was pruned. None when the newest anchor's prune is not accounted for so (a
    note of an earlier version, a prune cut short before its note): then only the cutoff
    bounds them."""
    import json

    newest = conn.execute("SELECT max(id) FROM anchors").fetchone()[0]
    if newest is None:
        return set()
    for (data,) in conn.execute("SELECT data FROM events WHERE kind = 'store.pruned' "
                                "ORDER BY id DESC"):
        note = json.loads(data or "{}")
        if note.get("anchor_id") is None:
            continue  # a prune that removed no events
        names = note.get("runs_pruned")
        return set(names) if note["anchor_id"] == newest and isinstance(names, list) else None
    return None


def prune_cutoff(conn: sqlite3.Connection) -> float | None:
    """Rows older than this may have been pruned, or None when nothing was. Each chained
    store.pruned note holds its prune's cutoff; a note of an earlier version does not, and then
    its own time bounds it (a prune removes nothing newer than itself). Anchors no note
    accounts for (a prune cut short before its note) are bounded by the chained row after them:
    before, they counted as infinity, and every seal was skipped from then on."""
    import json

    cutoffs: list[float] = []
    covered = 0
    for ts, data in conn.execute("SELECT ts, data FROM events WHERE kind = 'store.pruned'"):
        note = json.loads(data or "{}")
        said = note.get("older_than_ts")
        cutoffs.append(said if isinstance(said, (int, float)) else ts)
        if isinstance(note.get("anchor_id"), int):
            covered = max(covered, note["anchor_id"])
    # The first row after an anchor is older than its prune's cutoff (cut short among the
    # events: then no output was pruned yet) or the first one at or after it (the events were
    # done): either way nothing newer than it was pruned. Without that row, the anchor's time.
    (uncovered,) = conn.execute(
        "SELECT max(coalesce((SELECT e.ts FROM events e WHERE e.id = a.upto_id + 1), a.ts)) "
        "FROM anchors a WHERE a.id > ?", (covered,)).fetchone()
    if uncovered is not None:
        cutoffs.append(uncovered if isinstance(uncovered, (int, float)) else float("inf"))
    return max(cutoffs, default=None)


_CHECKING = threading.Lock()  # one copy at a time: a watcher's 16 verifies are not 16 copies


def fts_check(conn: sqlite3.Connection) -> str | None:
    """FTS5's own integrity check of both full-text indexes against their rows (a row
    re-indexed with other words keeps every count right); None when it holds.

    It is a write statement, so it runs on a copy of the file taken from `conn`'s snapshot (a
    temporary file, removed after, or by the next check when this process was killed), never
    on the file: there it held the write lock for its whole run, seconds on a large history,
    past the writer's busy timeout, so every decision meanwhile was refused and bulk rows were
    lost; a watcher running `audit verify` in a loop kept it so (review s17). A copy is taken under a read lock, which no writer waits for,
    and nobody holding the write lock can make the check be skipped (review s14b). It is made
    only with twice its size free, so a verify never fills the disk the witness needs."""
    folder = tempfile.gettempdir()
    with _CHECKING:
        sweep_left_copies(folder)  # before the room is measured: they take room too
        need = 2 * sum(_size(f) for f in _files(conn))
        free = shutil.disk_usage(folder).free
        if free < need:
            return (f"the search index could not be checked: its copy needs {need >> 20} MiB "
                    f"free in {folder}, {free >> 20} MiB are; make room there (or set TMPDIR "
                    "for the daemon) and run the verify again")
        try:
            with snapshot_copy(conn, folder) as copy:
                for fts in (f"{table}_fts" for table, _mark, _cols in TABLES):
                    try:
                        copy.execute(f"INSERT INTO {fts}({fts}, rank) VALUES ('integrity-check', 1)")
                    except sqlite3.DatabaseError as exc:
                        return f"the search index {fts} does not match its rows ({exc}): a search may not show every row"
            return None
        except (sqlite3.Error, OSError) as exc:
            return (f"the search index could not be checked: its copy in {folder} could not be "
                    f"made ({exc}); run the verify again")


def _files(conn: sqlite3.Connection) -> list[str]:
    main = next((row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"), "")
    return [main, main + "-wal"] if main else []


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
