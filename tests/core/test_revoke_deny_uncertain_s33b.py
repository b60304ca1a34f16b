"""A revoke whose grant.revoked record is uncertain (store/waits.StoreUncertain: it may yet
land, or not): an allow grant is revoked anyway (that takes power away), a deny grant stays
in force (revoking it gives power: deny grants outrank allow grants) and the answer says so.
Review s33 (helper 129). The stall: store.audit.write_head, inside the batch before COMMIT,
sleeps 1.5 s and then fails the batch; acommit timeout 0.3 s, SETTLE_S 0.3 s."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from console.daemon.ops.approvals import grant_revoke
from console.policy import GrantTable, new_grant
from console.policy.netrules import NetworkRules
from console.policy.network import decide_network
from console.protocol import Failure
from store.writer import StoreWriter

from .store_stall import stall_batches


def test_a_deny_grant_stays_when_its_revoke_is_uncertain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    armed = stall_batches(monkeypatch, fail=True)
    w = StoreWriter(tmp_path / "h.db", os.urandom(32)).start()
    now = time.time()
    table = GrantTable()
    table.add(new_grant("network", "**.example.net", "allow", "run", run_id="r1",
                        profile="demo", decided_by="alice", now=now))
    deny = table.add(new_grant("network", "bad.example.net", "deny", "run", run_id="r1",
                               profile="demo", decided_by="alice", now=now))

    async def record_security(kind: str, **kw: Any) -> dict[str, Any]:
        return await w.acommit(kind, timeout=0.3, **kw)

    core: Any = SimpleNamespace(grants=table,
                                store=SimpleNamespace(record_security=record_security))
    peer: Any = SimpleNamespace(user="bob")

    def action() -> str:
        return decide_network(NetworkRules(default="ask"), "bad.example.net", 443, None,
                              grants=table, run_id="r1", profile="demo",
                              now=time.time()).action

    assert action() == "deny"
    armed["on"] = True
    try:
        with pytest.raises(Failure) as refused:
            asyncio.run(grant_revoke(core, peer, {"id": deny.id}, None))
        time.sleep(2)  # the batch fails: the revoke is never recorded
        armed["on"] = False
        revoked = w.call(lambda db: db.conn.execute(
            "SELECT count(*) FROM events WHERE kind='grant.revoked'").fetchone()[0]).result(5)
    finally:
        armed["on"] = False
        w.close()
    assert revoked == 0  # not on the record
    assert action() == "deny", "the agent reaches bad.example.net on an unrecorded revoke"
    assert any(g.id == deny.id for g in table.list())
    said = str(refused.value)
    assert "still applies" in said and "not confirmed" in said, said


def test_an_allow_grant_goes_when_its_revoke_is_uncertain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    armed = stall_batches(monkeypatch)
    w = StoreWriter(tmp_path / "h.db", os.urandom(32)).start()
    table = GrantTable()
    allow = table.add(new_grant("network", "**.example.net", "allow", "run", run_id="r1",
                                profile="demo", decided_by="alice", now=time.time()))

    async def record_security(kind: str, **kw: Any) -> dict[str, Any]:
        return await w.acommit(kind, timeout=0.3, **kw)

    core: Any = SimpleNamespace(grants=table,
                                store=SimpleNamespace(record_security=record_security))
    armed["on"] = True
    try:
        with pytest.raises(Failure) as refused:
            asyncio.run(grant_revoke(core, SimpleNamespace(user="bob"), {"id": allow.id}, None))
    finally:
        armed["on"] = False
        w.close()
    assert not table.list()  # taking power away needs no record
    assert "was revoked" in str(refused.value) and "not confirmed" in str(refused.value)
