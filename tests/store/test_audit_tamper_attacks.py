"""Attack review of the tamper-evident history (2026-12-02): someone who can write the
database file but not read the key tries to change what was recorded without `audit verify`
(or the daemon at its next start) noticing, to make verify crash or hang, or to make a person
see something other than what was recorded.

Who can write the file as shipped: data_dir is chmod 0700 at every start and the database is
created 0600, so only the daemon's user (who can also read the key) and root; the sandbox does
not see data_dir. The findings below matter for anyone who gets the file without the key (a
restored or synced copy, a backup) and, for the runs table, for what the daemon itself *does*
with rows it never authenticates.

Tests not named test_held_* failed on 91e5d4c (/work/notes/review-d-output.txt: 16 failed, 15
passed) and assert the secure behaviour. One finding was a documented limit then: run output
(`logs`) was not chained. It is sealed at each run's end now (tests/store/test_output_sealed.py).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from console.protocol import LIVE_STATES
from store import audit, history
from store.db import StoreError, open_db
from store.writer import StoreWriter

Make = Callable[..., StoreWriter]
DAY = 86400.0


def _verify(db_path: Path, key: bytes, witness: Path | None) -> audit.VerifyResult:
    db = open_db(db_path, readonly=True)
    try:
        return audit.verify(db, key, witness=witness, live_states=LIVE_STATES)
    finally:
        db.close()


def _sql(db_path: Path, *statements: str, params: tuple = ()) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        for s in statements:
            conn.execute(s, params if "?" in s else ())
    finally:
        conn.close()


def _fill(make_writer: Make, witness: Path, n: int = 20, *, old: int = 0,
          kind: Callable[[int], str] = lambda i: "approval.decided") -> None:
    """n security events; the first `old` are 100 days old, the rest 10 s old."""
    now = time.time()
    w = make_writer(witness=witness)
    for i in range(n):
        w.commit(kind(i), run_id="r1", actor="alice", text=f"decision {i} word{i}",
                 data={"i": i}, ts=now - 100 * DAY if i < old else now - 10)
    w.record_output("r1", "stdout", "rm -rf ~/project", ts=now - 10)
    w.flush()
    w.close()


def _search(db_path: Path, text: str, **kw: object) -> list[int]:
    db = open_db(db_path, readonly=True)
    try:
        return [e["id"] for e in history.query_events(db, search=text, **kw)]
    finally:
        db.close()


def _lying_index(db_path: Path, name: str, cols: str, hide_where: str) -> None:
    """Replace an index by one whose b-tree leaves rows out while its schema text says it
    covers the whole table (a partial index renamed through writable_schema)."""
    _sql(db_path, f"DROP INDEX {name}",
         f"CREATE INDEX {name} ON events({cols}) WHERE NOT ({hide_where})",
         "PRAGMA writable_schema=ON",
         f"UPDATE sqlite_master SET sql = 'CREATE INDEX {name} ON events({cols})' "
         f"WHERE name = '{name}'",
         "PRAGMA writable_schema=OFF")


# === findings: prune launders tampering =========================================================


def test_prune_launders_rows_deleted_from_the_middle(make_writer: Make, db_path: Path,
                                                     key: bytes, witness: Path) -> None:
    """Rows 4..5 deleted (verify: BROKEN). A routine prune whose cutoff lies past the gap signs
    an anchor over whatever is left and verify turns green: the deletion is laundered."""
    _fill(make_writer, witness, 20, old=10)
    _sql(db_path, "DELETE FROM events WHERE id IN (4, 5)")
    assert not _verify(db_path, key, witness).ok  # caught before the prune
    w = make_writer(witness=witness)
    try:
        w.prune(time.time() - 30 * DAY)
    except StoreError:
        pass  # a prune that refuses to sign over a broken chain is the fix
    finally:
        w.close()
    result = _verify(db_path, key, witness)
    assert not result.ok, f"prune signed an anchor over a gap; verify now says {result.reason!r}"


def test_prune_deletes_recent_rows_whose_ts_was_edited(make_writer: Make, db_path: Path,
                                                       key: bytes, witness: Path) -> None:
    """Rows 11..17 are 10 s old. The attacker sets ts=1 on rows 1..17 (their hashes break, but
    they are about to be deleted); the owner's routine `prune --older-than 30d` then deletes
    them, signs an anchor over row 17's genuine hash, and verify is green with recent
    decisions gone."""
    _fill(make_writer, witness, 20, old=10)
    _sql(db_path, "UPDATE events SET ts = 1 WHERE id <= 17")
    w = make_writer(witness=witness)
    try:
        w.prune(time.time() - 30 * DAY)
    except StoreError:
        pass
    finally:
        w.close()
    conn = sqlite3.connect(db_path)
    left = {r[0] for r in conn.execute("SELECT id FROM events")}
    conn.close()
    result = _verify(db_path, key, witness)
    assert set(range(11, 18)) <= left or not result.ok, (
        f"recent rows 11..17 were pruned as 'older than 30 days' and verify says {result.reason!r}")


# === findings: search and filters show something else than the table ===========================


def test_lying_kind_index_hides_an_event_from_history_filters(make_writer: Make, db_path: Path,
                                                              key: bytes, witness: Path) -> None:
    """An events_kind index that leaves row 11 out: `history --kind approval.decided` (and
    `policy shadow`, `report`, which filter by kind) never show it; verify reads the table in
    rowid order and stays green. PRAGMA integrity_check names it."""
    _fill(make_writer, witness, 20, kind=lambda i: "approval.decided" if i % 5 == 0 else "net.decision")
    _lying_index(db_path, "events_kind", "kind, id", "id = 11")
    db = open_db(db_path, readonly=True)
    try:
        shown = [e["id"] for e in history.query_events(db, kind="approval.decided")]
    finally:
        db.close()
    result = _verify(db_path, key, witness)
    assert 11 in shown or not result.ok, (
        f"history --kind shows {shown} (row 11 hidden) and verify says {result.reason!r}")


def test_edited_fts_index_hides_an_event_from_search(make_writer: Make, db_path: Path, key: bytes,
                                                     witness: Path) -> None:
    """One FTS5 'delete' command takes row 11 out of events_fts: `history --search word10`
    finds nothing, verify is green (it never looks at the index)."""
    _fill(make_writer, witness, 20)
    assert _search(db_path, "word10") == [11]
    conn = sqlite3.connect(db_path, isolation_level=None)
    text, kind = conn.execute("SELECT text, kind FROM events WHERE id = 11").fetchone()
    conn.execute("INSERT INTO events_fts(events_fts, rowid, text, kind) VALUES ('delete', 11, ?, ?)",
                 (text, kind))
    conn.close()
    found = _search(db_path, "word10")
    result = _verify(db_path, key, witness)
    assert found == [11] or not result.ok, f"search hides row 11 and verify says {result.reason!r}"


def test_fts_mark_pushed_ahead_keeps_new_events_out_of_search(make_writer: Make, db_path: Path,
                                                              key: bytes, witness: Path) -> None:
    """meta.fts_events_upto set to 999999999: the writer believes everything is indexed, so no
    event written from then on is ever searchable (flush() returns at once); verify green."""
    _fill(make_writer, witness, 3)
    _sql(db_path, "UPDATE meta SET value = '999999999' WHERE key = 'fts_events_upto'")
    w = make_writer(witness=witness)
    row = w.commit("net.decision", actor="gate", text="allow exfiltrate.example")
    w.flush()
    w.close()
    found = _search(db_path, "exfiltrate")
    result = _verify(db_path, key, witness)
    assert found == [row["id"]] or not result.ok, (
        f"a new event is not searchable after flush() and verify says {result.reason!r}")


# === findings: schema objects planted in the file run on the daemon's write connection ==========


def test_planted_trigger_hides_every_new_decision_from_search(make_writer: Make, db_path: Path,
                                                              key: bytes, witness: Path) -> None:
    """A trigger on meta fires on the writer's own connection each time the indexer moves its
    mark, and deletes the new net.decision rows from events_fts as they are indexed. The
    writer opens the file without looking at its schema, verify never looks either."""
    _fill(make_writer, witness, 3)
    _sql(db_path, """CREATE TRIGGER meta_audit AFTER UPDATE ON meta
        WHEN new.key = 'fts_events_upto' BEGIN
        INSERT INTO events_fts(events_fts, rowid, text, kind) SELECT 'delete', id, text, kind
        FROM events WHERE id > CAST(old.value AS INTEGER) AND id <= CAST(new.value AS INTEGER)
        AND kind = 'net.decision'; END""")
    try:
        w = make_writer(witness=witness)
    except StoreError:
        return  # the fix: a schema object the store did not make is refused
    row = w.commit("net.decision", actor="gate", text="allow exfiltrate.example")
    w.flush()
    w.close()
    found = _search(db_path, "exfiltrate")
    result = _verify(db_path, key, witness)
    assert found == [row["id"]] or not result.ok, (
        f"search hides the new decision and verify says {result.reason!r}")


def test_planted_trigger_swallows_a_committed_security_event(make_writer: Make, db_path: Path,
                                                             witness: Path) -> None:
    """BEFORE INSERT ... RAISE(IGNORE): commit() returns the stored row (the daemon then lets
    the agent act) but nothing was stored. Verify names the gap later; the durability promise
    ("recorded before the agent acts") is broken without the daemon noticing."""
    _fill(make_writer, witness, 3)
    _sql(db_path, """CREATE TRIGGER drop_decisions BEFORE INSERT ON events
        WHEN new.kind = 'approval.decided' BEGIN SELECT RAISE(IGNORE); END""")
    try:
        w = make_writer(witness=witness)
    except StoreError:
        return
    try:
        row = w.commit("approval.decided", actor="alice", text="allow rm -rf /")
    except StoreError:
        return  # refused: fail closed
    finally:
        w.close()
    conn = sqlite3.connect(db_path)
    stored = conn.execute("SELECT count(*) FROM events WHERE id = ?", (row["id"],)).fetchone()[0]
    conn.close()
    assert stored == 1, f"commit() acknowledged row {row['id']} but it was never stored"


# === findings: unchained tables shown to a person ==============================================


def test_edited_runs_row_goes_unnoticed(make_writer: Make, db_path: Path, key: bytes,
                                        witness: Path) -> None:
    """The runs table (command, workspace, exit code, state) is not chained either; `ps`,
    `report` and the console show the edit; verify is green."""
    _fill(make_writer, witness, 3)
    w = make_writer(witness=witness)
    w.call(lambda db: db.conn.execute(
        "INSERT INTO runs (id, state, command, workspace, exit_code, started_at) VALUES "
        "('r1', 'exited', ?, '/srv/ws', 1, 1)", (json.dumps(["curl", "evil.example"]),))).result(10)
    w.close()
    _sql(db_path, "UPDATE runs SET command = '[\"make\", \"test\"]', exit_code = 0 WHERE id = 'r1'")
    result = _verify(db_path, key, witness)
    assert not result.ok, f"the runs row was rewritten and verify says {result.reason!r}"


# === findings: verify crashes or hangs on a crafted file =======================================


def test_verify_crashes_on_a_head_with_an_infinite_id(make_writer: Make, db_path: Path,
                                                      key: bytes, witness: Path) -> None:
    """read_head does int(head["id"]) and catches ValueError/KeyError/TypeError, not the
    OverflowError of int(1e999): verify raises instead of naming the forged head."""
    _fill(make_writer, witness, 3)
    _sql(db_path, """UPDATE meta SET value = '{"id":1e999,"hash":"x","mac":"y"}'
                     WHERE key = 'chain_head'""")
    try:
        result = _verify(db_path, key, witness)
    except OverflowError as exc:
        pytest.fail(f"verify crashed: {exc!r}")
    assert not result.ok


def test_writer_start_crashes_on_a_head_with_an_infinite_id(make_writer: Make, db_path: Path,
                                                            witness: Path) -> None:
    """The same head makes StoreWriter.start (the daemon's start) die with an uncaught
    OverflowError from audit.chain_start, not a StoreError or a recorded chain warning."""
    _fill(make_writer, witness, 3)
    _sql(db_path, """UPDATE meta SET value = '{"id":1e999,"hash":"x","mac":"y"}'
                     WHERE key = 'chain_head'""")
    try:
        make_writer(witness=witness)
    except StoreError:
        pass
    except OverflowError as exc:
        pytest.fail(f"the writer crashed at start: {exc!r}")


def test_verify_crashes_on_invalid_utf8_in_a_row(make_writer: Make, db_path: Path, key: bytes,
                                                 witness: Path) -> None:
    """Row 3's text set to bytes that are not UTF-8 (CAST(x'..' AS TEXT)): the reader's
    cursor raises OperationalError inside verify, which names no row."""
    _fill(make_writer, witness, 5)
    _sql(db_path, "UPDATE events SET text = CAST(x'6f6bff' AS TEXT) WHERE id = 3")
    try:
        result = _verify(db_path, key, witness)
    except sqlite3.Error as exc:
        pytest.fail(f"verify crashed instead of naming row 3: {exc!r}")
    assert not result.ok and result.first_bad_id == 3


def test_verify_hangs_on_events_replaced_by_an_endless_view(make_writer: Make, db_path: Path,
                                                            key: bytes, witness: Path) -> None:
    """events renamed away and a VIEW named events put in its place (a recursive CTE without
    end): verify's ORDER BY never returns (CPU and temp space grow). Nothing checks that
    events is the table the store made. The daemon's start (fts.ends) hangs the same way."""
    _fill(make_writer, witness, 3)
    _sql(db_path, "ALTER TABLE events RENAME TO events_real",
         "CREATE VIEW events AS WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
         "SELECT e.* FROM events_real e, n")
    db = open_db(db_path, readonly=True)
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["result"] = audit.verify(db, key, witness=witness)
        except Exception as exc:  # noqa: BLE001 - reported below
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(5)
    hung = t.is_alive()
    if hung:
        db.conn.interrupt()
        t.join(10)
    db.close()
    assert not hung, "verify did not return within 5 s"
    result = out.get("result")
    assert isinstance(result, audit.VerifyResult) and not result.ok, out


# === findings: the daemon acts on the unauthenticated runs table at its start ==================


@pytest.fixture
def stopped_daemon(home: Path, daemon_env: dict[str, str]) -> Iterator[object]:
    from tests.conftest import Daemon

    d = Daemon(home, daemon_env)
    d.start()
    d.cli("audit", "verify")
    d.stop()
    yield d
    d.stop()


def _forge_live_run(home: Path, run_id: str, pids: list[int]) -> None:
    _sql(home / "data" / "pilothouse.db",
         "INSERT INTO runs (id, state, pids, started_at) VALUES (?, 'running', ?, 1)",
         params=(run_id, json.dumps(pids)))


def test_forged_run_id_makes_reconcile_delete_a_folder_outside_runs(stopped_daemon, home: Path) -> None:
    """A runs row with id '../victim' in state running: at its next start the daemon's
    reconcile calls remove_unmounted(runs_dir / '../victim'), an rmtree outside runs/ (an
    absolute id names any folder the daemon's user can delete)."""
    victim = home / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me\n")
    _forge_live_run(home, "../victim", [])
    try:
        stopped_daemon.start()
    except RuntimeError:
        pass
    assert (victim / "precious.txt").exists(), "the daemon deleted a folder named by a forged run id"


def test_forged_run_id_erases_the_history_key_and_witness(stopped_daemon, home: Path) -> None:
    """Run id '../data': reconcile deletes the daemon's own data folder (database, key,
    witness). At the next start a new key, database and witness are made and `audit verify`
    says ok: the whole recorded history is replaced, unseen (no syslog copy configured)."""
    key_before = (home / "data" / "audit.key").read_bytes()
    _forge_live_run(home, "../data", [])
    for _ in range(2):
        try:
            stopped_daemon.start()
        except RuntimeError:
            pass
        stopped_daemon.stop()
    stopped_daemon.start()
    verify = stopped_daemon.cli("audit", "verify", "--json", check=False)
    key_now = (home / "data" / "audit.key").read_bytes() if (home / "data" / "audit.key").exists() else b""
    assert key_now == key_before or verify.returncode != 0, (
        f"history, key and witness replaced; audit verify says: {verify.stdout.strip()}")


def test_forged_pids_make_reconcile_kill_an_unrelated_process(stopped_daemon, home: Path) -> None:
    """kill_leftovers trusts a recorded pid whose process has ppid 1: any orphaned or
    init-started process (a system service under a root daemon) is SIGKILLed with all its
    children when its pid is written into a forged live run."""
    import psutil

    spawn = subprocess.Popen(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"],
                             stdout=subprocess.PIPE, text=True)
    victim = int(spawn.stdout.readline())  # type: ignore[union-attr]
    spawn.wait()
    try:
        if psutil.Process(victim).ppid() != 1:
            pytest.skip("orphans are not reparented to pid 1 here (a subreaper)")
        _forge_live_run(home, "r-forged", [victim])
        try:
            stopped_daemon.start()
        except RuntimeError:
            pass
        time.sleep(0.5)
        status = psutil.Process(victim).status() if psutil.pid_exists(victim) else "gone"
        assert status not in ("zombie", "gone"), "the daemon killed a process that was never a run's"
    finally:
        try:
            os.kill(victim, 9)
        except OSError:
            pass


# === held =======================================================================================


@pytest.mark.parametrize("edit", [
    "UPDATE events SET ts = CAST(ts AS INTEGER) WHERE id = 3",          # REAL affinity, value changes
    "UPDATE events SET ts = ts + 1e-6 WHERE id = 3",
    "UPDATE events SET text = CAST(text AS BLOB) WHERE id = 3",          # same bytes, BLOB type
    "UPDATE events SET text = text || char(0) || 'hidden' WHERE id = 3",  # NUL then more text
    "UPDATE events SET kind = kind || ' ' WHERE id = 3",
    "UPDATE events SET actor = NULL WHERE id = 3",
    "UPDATE events SET run_id = 'null' WHERE id = 3",
    "UPDATE events SET data = '{\"i\":2.0}' WHERE id = 3",               # same JSON value, other text
    "UPDATE events SET data = NULL WHERE id = 3",
    "UPDATE events SET text = 'de' || char(0x301) || 'cision 2 word2' WHERE id = 3",
])
def test_held_type_and_encoding_edits_are_caught(make_writer: Make, db_path: Path, key: bytes,
                                                 witness: Path, edit: str) -> None:
    _fill(make_writer, witness, 5)
    _sql(db_path, edit)
    result = _verify(db_path, key, witness)
    assert not result.ok and result.first_bad_id == 3, result


def test_held_database_zeroed_is_caught_at_start_and_by_verify(make_writer: Make, db_path: Path,
                                                               key: bytes, witness: Path) -> None:
    _fill(make_writer, witness, 5)
    for suffix in ("", "-wal", "-shm"):
        p = db_path.with_name(db_path.name + suffix)
        if p.exists():
            p.write_bytes(b"")
    w = make_writer(witness=witness)
    w.flush()
    w.close()
    conn = sqlite3.connect(db_path)
    kinds = [r[0] for r in conn.execute("SELECT kind FROM events")]
    conn.close()
    assert "store.rollback_detected" in kinds
    assert not _verify(db_path, key, witness).ok


def test_held_triggers_that_freeze_the_chain_are_caught_by_the_witness(
        make_writer: Make, db_path: Path, key: bytes, witness: Path) -> None:
    """Triggers drop every new event and keep the old signed head. The writer now refuses a
    file with schema objects it never made, and verify names them (before: the database stayed
    a consistent, older chain that only the witness caught)."""
    _fill(make_writer, witness, 3)
    _sql(db_path, "CREATE TRIGGER f1 BEFORE INSERT ON events BEGIN SELECT RAISE(IGNORE); END",
         "CREATE TRIGGER f2 BEFORE UPDATE ON meta WHEN new.key = 'chain_head' "
         "BEGIN SELECT RAISE(IGNORE); END")
    with pytest.raises(StoreError, match="schema objects Pilothouse never made"):
        make_writer(witness=witness)
    for seen in (None, witness):
        result = _verify(db_path, key, seen)
        assert not result.ok and "trigger f1" in result.reason, result


def test_held_witness_line_removed_is_caught(make_writer: Make, db_path: Path, key: bytes,
                                             witness: Path) -> None:
    _fill(make_writer, witness, 5)
    lines = witness.read_bytes().splitlines(keepends=True)
    witness.write_bytes(b"".join(lines[:2] + lines[3:]))
    assert not _verify(db_path, key, witness).ok


def test_held_anchor_copied_under_a_new_id_is_caught(make_writer: Make, db_path: Path, key: bytes,
                                                     witness: Path) -> None:
    """An anchor's signature covers its own id: a copy moved forward (to cover later rows
    deleted by hand) does not verify."""
    _fill(make_writer, witness, 20, old=10)
    w = make_writer(witness=witness)
    w.prune(time.time() - 30 * DAY)
    w.close()
    _sql(db_path, "INSERT INTO anchors (id, upto_id, upto_hash, pruned, ts, sig) "
         "SELECT id + 1, upto_id, upto_hash, pruned, ts, sig FROM anchors")
    assert not _verify(db_path, key, witness).ok


def test_held_verify_runs_no_trigger_and_reads_the_table_in_rowid_order(
        make_writer: Make, db_path: Path, key: bytes, witness: Path) -> None:
    """verify's connection is mode=ro with query_only: a trigger cannot run there, and a lying
    index does not change what it reads (it scans the table)."""
    _fill(make_writer, witness, 5)
    _lying_index(db_path, "events_ts", "ts", "id = 3")
    _lying_index(db_path, "events_run", "run_id, id", "id = 3")
    _sql(db_path, "UPDATE events SET text = 'edited' WHERE id = 3")
    result = _verify(db_path, key, witness)
    assert not result.ok and result.first_bad_id == 3


def test_held_real_runs_verify_against_their_recorded_start_and_end(daemon, workspace: Path) -> None:
    """The runs table of a real daemon agrees with the run.started and run.ended events that
    verify now compares it with: runs that exit 0 and 3 leave `audit verify` ok; a forged exit
    code does not."""
    from tests.conftest import needs_bwrap  # noqa: F401 - the daemon fixture runs bwrap

    for code in (0, 3):
        daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c", f"exit {code}",
                   check=False)
    done = daemon.cli("audit", "verify", "--json", check=False)
    assert done.returncode == 0 and json.loads(done.stdout)["ok"], done.stdout
    _sql(daemon.home / "data" / "pilothouse.db", "UPDATE runs SET exit_code = 0 WHERE exit_code = 3")
    done = daemon.cli("audit", "verify", "--json", check=False)
    assert not json.loads(done.stdout)["ok"] and "exit code" in done.stdout, done.stdout
