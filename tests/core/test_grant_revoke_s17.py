"""Review s17 (daemon): `grant.revoke` recorded "X revoked grant ID" in the chained history
before it looked for the grant. Any id at all (a typo, or 4 MB of text from an approver's
script: each row its id twice, committed and chained, 16 connections of 256 requests) became a
security row saying a revoke happened that never did, and the answer said there was no such
grant. Secure: an id that names no live grant is refused before anything is recorded.

A real daemon on a temporary home, its real operator.sock and store. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import socket

import pytest

from tests.conftest import Daemon


def _call(daemon: Daemon, op: str, args: dict) -> dict:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(str(daemon.sock))
        s.sendall((json.dumps({"v": 1, "id": 1, "op": op, "args": args}) + "\n").encode())
        return json.loads(s.makefile("rb").readline())


@pytest.mark.parametrize("grant_id", ["gzzzzz", "g" + "x" * 1_000_000], ids=["typo", "a megabyte"])
def test_revoking_no_grant_records_nothing(daemon: Daemon, grant_id: str) -> None:
    answer = _call(daemon, "grant.revoke", {"id": grant_id})
    assert answer["ok"] is False and answer["error"]["code"] == "unknown-grant", answer
    assert len(answer["error"]["message"]) < 200, "the answer repeats the whole id"
    rows = _call(daemon, "history", {"kind": "grant."})
    assert rows["ok"] and rows["result"] == [], rows
