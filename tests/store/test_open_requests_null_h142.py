"""Review h142, a sibling of bc62c4c (one NULL empties a NOT IN list): `open_requests` finds a
dead daemon's open requests with `id NOT IN (SELECT json_extract(data, '$.id') ...)` over the
run's closing events, and an `approval.refused` (an ask past the run's rate or its pending
bound, which the agent causes at will) is recorded without an id. One such row in the run
emptied the list: close_lost_requests closed none of them, and `policy why` showed them
pending for good."""

from __future__ import annotations

import os
from pathlib import Path

from console.daemon.requests import refusal_data
from console.policy import Provenance
from store.decisions import open_requests
from store.writer import StoreWriter


def test_an_idless_refusal_does_not_hide_the_open_requests(tmp_path: Path) -> None:
    w = StoreWriter(tmp_path / "h.db", os.urandom(32)).start()
    try:
        w.commit("approval.requested", run_id="r1",
                 data={"id": "q1", "run_id": "r1", "kind": "exec", "subject": "make deploy"})
        refused = refusal_data("r1", "demo", "exec", "ls", Provenance("limit", detail="too many"))
        assert "id" not in refused
        w.commit("approval.refused", run_id="r1", data=refused)
        left = w.call(lambda db: open_requests(db, "r1")).result(10)
    finally:
        w.close()
    assert [r["id"] for r in left] == ["q1"], "an id-less refusal hid the run's open request"
