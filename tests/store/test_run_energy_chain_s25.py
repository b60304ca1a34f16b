"""Left after s23: `audit verify` checked a run's token totals against its chained events, but
not its energy (the J/token a person compares agents by): energy_j lowered in the file after
the run ended passed verify. The run's end now keeps the row's energy as it ended
(`energy_j_at_end`, chained); energy only grows after (late windows are added), so verify
names a row below it."""

from __future__ import annotations

from pathlib import Path

from store.runs_table import write_run_totals
from store.writer import StoreWriter
from tests.store.test_audit_tamper_attacks import Make, _sql, _verify
from tests.store.test_run_tokens_chain_s23 import TOKENS_IN, TOKENS_OUT, _metered_run

ENERGY_J = 12.345


def test_energy_lowered_after_the_end_is_named_by_verify(make_writer: Make, db_path: Path,
                                                         key: bytes, witness: Path) -> None:
    end = _metered_run(make_writer, witness, energy_j=ENERGY_J)
    assert end.get("energy_j_at_end") == ENERGY_J, end
    assert end.get("tokens_at_end") == {"tokens_in": TOKENS_IN, "tokens_out": TOKENS_OUT}, end
    assert _verify(db_path, key, witness).ok
    for lowered in (0.0, 12.3, 1e-9):
        _sql(db_path, "UPDATE runs SET energy_j = ? WHERE id = 'r1'", params=(lowered,))
        result = _verify(db_path, key, witness)
        assert not result.ok and "r1" in result.reason and "energy_j" in result.reason, (
            f"energy_j = {lowered}: verify says {result.reason!r}")
    _sql(db_path, "UPDATE runs SET energy_j = ? WHERE id = 'r1'", params=(ENERGY_J,))
    assert _verify(db_path, key, witness).ok


def test_energy_added_after_the_end_is_no_false_alarm(make_writer: Make, db_path: Path,
                                                      key: bytes, witness: Path) -> None:
    _metered_run(make_writer, witness, energy_j=ENERGY_J)
    w: StoreWriter = make_writer(witness=witness)
    # A very late window, as the GPU service adds it once the row is final.
    w.call(lambda db: write_run_totals(db.conn, [], [(0, 0, 0.5, 0.0001, "r1")])).result(10)
    w.close()
    result = _verify(db_path, key, witness)
    assert result.ok, result.reason


def test_totals_erased_to_what_is_no_number_are_named(make_writer: Make, db_path: Path,
                                                      key: bytes, witness: Path) -> None:
    """Review s25: a value that is not a number skipped the check, and a report shows it as
    none (0 J): energy or a count the end recorded, set to NULL, text or infinity, passed."""
    _metered_run(make_writer, witness, energy_j=ENERGY_J)
    for field, bad in [("energy_j", None), ("energy_j", "lots"), ("energy_j", float("inf")),
                       ("energy_j", float("-inf")), ("tokens_in", None), ("tokens_out", "x"),
                       ("tokens_out", 2.5)]:
        _sql(db_path, f"UPDATE runs SET {field} = ? WHERE id = 'r1'", params=(bad,))
        result = _verify(db_path, key, witness)
        assert not result.ok and "r1" in result.reason and field in result.reason, (
            f"{field} = {bad!r}: verify says {result.reason!r}")
        _sql(db_path, "UPDATE runs SET tokens_in = ?, tokens_out = ?, energy_j = ? "
             "WHERE id = 'r1'", params=(TOKENS_IN, TOKENS_OUT, ENERGY_J))
    assert _verify(db_path, key, witness).ok


async def test_the_gpu_services_late_windows_never_fall_below_the_end(tmp_path: Path) -> None:
    """Through the real GPU service (fake NVML): the run ends while a window it used is still
    open; the end keeps the row's energy then, the window closes after and adds to it, and the
    row stays at or above what the end kept, so verify's floor raises no false alarm."""
    import os
    import sqlite3

    from console.daemon.bus import Bus
    from console.gpu import GpuService
    from store.integrity import totals_off
    from tests.gpu.fake_nvml import two_gpus
    from tests.gpu.test_service import CFG, add_runs

    w = StoreWriter(tmp_path / "history.db", os.urandom(32)).start()
    try:
        add_runs(w, "r1")
        now = [0.0]
        svc = GpuService(w, Bus(), CFG, None, nvml=two_gpus(clock=lambda: now[0]),
                         clock=lambda: now[0], window_s=5)

        def tick_to(t: int) -> None:
            while now[0] < t:
                now[0] += 1.0
                svc.handle_tick(svc.sampler.sample_once())  # type: ignore[arg-type]

        svc.on_tokens("r1", 10, 90, ts=1.0)
        tick_to(6)
        svc.on_tokens("r1", 5, 40, ts=6.5)  # in [5, 10), still open when the run ends
        tick_to(8)
        await svc.finish_run("r1")
        end = w.commit("run.ended", run_id="r1", text="exited (exit 0)",
                       data={"state": "exited", "exit_code": 0}, seal_output=True)
        kept = end["data"]["energy_j_at_end"]
        assert kept > 0, end
        tick_to(30)
        await svc._write_totals(None)
        now[0] = 1000.0  # long after: the row is final, the run leaves memory
        await svc._write_totals(None)
        w.flush()
        conn = sqlite3.connect(w.db_path)
        try:
            (energy,) = conn.execute("SELECT energy_j FROM runs WHERE id = 'r1'").fetchone()
            assert energy > kept, (energy, kept)  # the open window's share came after the end
            assert totals_off(conn) is None
            conn.execute("UPDATE runs SET energy_j = ? WHERE id = 'r1'", (kept / 2,))
            conn.commit()
            found = totals_off(conn)
        finally:
            conn.close()
        assert found is not None and "r1" in found and "energy_j" in found, found
    finally:
        w.close()
