"""A profile rule saved with its approval whose policy.changed record is uncertain
(store/waits.StoreUncertain): the rule is still taken out of the file (fail closed), and the
answer says the record is not confirmed, not "could not be recorded": here it lands. Review
s33 (helper 129). The stall: store.audit.write_head sleeps 1.5 s inside the batch; acommit
timeout 0.3 s, SETTLE_S 0.3 s."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from console.config.profile_rules import PlannedRule
from console.daemon.ops.approvals import _save_planned
from store.writer import StoreWriter

from .store_stall import stall_batches


def test_an_uncertain_rule_record_is_taken_back_and_said_unconfirmed(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    armed = stall_batches(monkeypatch)
    w = StoreWriter(tmp_path / "h.db", os.urandom(32)).start()
    config = tmp_path / "config.toml"
    config.write_text('[profiles.demo]\ncommand = ["true"]\n')
    before = config.read_text()

    async def record_security(kind: str, **kw: Any) -> dict[str, Any]:
        return await w.acommit(kind, timeout=0.3, **kw)

    core: Any = SimpleNamespace(
        config=SimpleNamespace(cfg=SimpleNamespace(
            user_file=str(config), user_file_sha256=hashlib.sha256(config.read_bytes()).hexdigest())),
        paths=SimpleNamespace(config_file=config),
        reloader=SimpleNamespace(lock=asyncio.Lock()),
        store=SimpleNamespace(record_security=record_security))
    peer: Any = SimpleNamespace(user="alice")
    armed["on"] = True
    try:
        out = asyncio.run(_save_planned(core, peer, [PlannedRule("demo", "exec", "allow",
                                                                 "make lint")], "abcd"))
        armed["on"] = False
        w.flush(timeout=10)
        changed = w.call(lambda db: db.conn.execute(
            "SELECT text FROM events WHERE kind='policy.changed'").fetchall()).result(5)
    finally:
        armed["on"] = False
        w.close()
    assert config.read_text() == before  # taken back out
    assert changed  # the record landed (the batch only was slow)
    assert "could not be recorded" not in out["error"], (out, changed)
    assert "not confirmed" in out["error"] and "may yet show" in out["error"], out
