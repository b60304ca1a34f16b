"""Read-side queries about decisions: the events of one approval request (for `policy why`)
and the past decisions a candidate rule is replayed against (for `policy shadow`).

Kind conditions come first in each query, so the kind index narrows before any JSON is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from store.history import Db

DECISION_KINDS = ("approval.decided", "policy.decision", "net.decision")


@dataclass
class RequestEvents:
    """The newest request with an id: its events, oldest first, and how many earlier requests
    had the same id (ids are unique among one daemon's requests, not across its restarts)."""

    events: list[dict[str, Any]]
    earlier: int


def events_for_request(db: Db, request_id: str) -> RequestEvents:
    """The events of the newest request with this id (they carry its id) and the rule a
    profile-scope decision of it saved (that carries the id as request_id)."""
    rows = db.execute(
        "SELECT id, ts, run_id, kind, actor, text, data FROM events "
        "WHERE (kind >= 'approval.' AND kind < 'approval/' AND json_extract(data, '$.id') = ?) "
        "OR (kind = 'store.unconfirmed' AND json_extract(data, '$.id') = ?) "
        "OR (kind = 'policy.changed' AND json_extract(data, '$.request_id') = ?) ORDER BY id",
        (request_id, request_id, request_id),
    ).fetchall()
    asked = [i for i, r in enumerate(rows) if r[3] == "approval.requested"]
    newest = rows[asked[-1]:] if asked else rows
    return RequestEvents(
        [{"id": r[0], "ts": r[1], "run_id": r[2], "kind": r[3], "actor": r[4], "text": r[5],
          "data": json.loads(r[6]) if r[6] else None} for r in newest],
        max(len(asked) - 1, 0))


def final_decision(events: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, bool]:
    """(the request's last closing event or None while pending, whether the daemon did not
    apply it: an allow a `store.unconfirmed` names, committed after its wait had ended; a deny
    or cancel took effect all the same). A profile rule's policy.changed closes nothing."""
    final = next((e for e in reversed(events) if e["kind"] not in (
        "approval.requested", "store.unconfirmed", "policy.changed")), None)
    unapplied = final is not None and bool((final.get("data") or {}).get("allow")) and any(
        e["kind"] == "store.unconfirmed" and (e.get("data") or {}).get("event_id") == final["id"]
        for e in events)
    return final, unapplied


def past_requests(db: Db, limit: int = 20000) -> list[dict[str, Any]]:
    """The newest `limit` decisions, as {kind, subject, decision, run_id}; a gate's "ask"
    (a person then decided it) is left out, and so is an allow the daemon did not act on
    (a `store.unconfirmed` names it: committed after its wait ended, so refused). A late deny
    took effect all the same and stays, as in final_decision (review h144)."""
    rows = db.execute(
        "SELECT kind, data FROM events WHERE kind IN (?, ?, ?) AND NOT ("
        "COALESCE(json_extract(data, '$.action'), "
        "CASE WHEN json_extract(data, '$.allow') THEN 'allow' END) IS 'allow' AND id IN ("
        "SELECT json_extract(data, '$.event_id') FROM events WHERE kind = 'store.unconfirmed' "
        "AND json_extract(data, '$.event_id') IS NOT NULL)) "  # one NULL would empty NOT IN
        "ORDER BY id DESC LIMIT ?",
        (*DECISION_KINDS, limit),
    ).fetchall()
    out = []
    for kind, raw in rows:
        data = json.loads(raw) if raw else {}
        if kind == "net.decision":
            if data.get("action") == "ask":
                continue
            out.append({"kind": "network", "subject": f"{data.get('host')}:{data.get('port')}",
                        "decision": data.get("action"), "run_id": data.get("run_id")})
        else:
            decision = data.get("action") or ("allow" if data.get("allow") else "deny")
            out.append({"kind": data.get("kind"), "subject": data.get("subject"),
                        "decision": decision, "run_id": data.get("run_id")})
    return out


def open_requests(db: Db, run_id: str) -> list[dict[str, Any]]:
    """The approval requests of a run recorded as asked and never closed (decided, cancelled or
    refused): what a daemon that died left open. Their recorded data, oldest first."""
    # IS NOT NULL: an ask refused past the run's rate is recorded without an id, and one NULL
    # in the list makes every NOT IN unknown: none was found open (review h142)
    rows = db.execute(
        "SELECT data FROM events WHERE run_id = ? AND kind = 'approval.requested' "
        "AND json_extract(data, '$.id') NOT IN (SELECT json_extract(data, '$.id') FROM events "
        "WHERE run_id = ? AND kind IN ('approval.decided', 'approval.cancelled', "
        "'approval.refused') AND json_extract(data, '$.id') IS NOT NULL) ORDER BY id",
        (run_id, run_id),
    ).fetchall()
    return [json.loads(r[0]) for r in rows if r[0]]
