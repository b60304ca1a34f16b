"""Read-side query for `pilothouse report`: what one run asked, what was decided, and its
network connections (count and bytes)."""

from __future__ import annotations

from typing import Any

from store.history import Db

# Events a row stands for: a flood's summary row (console/daemon/floods.py) stands for `count`.
_EVENTS = "CASE WHEN json_extract(data, '$.aggregated') THEN json_extract(data, '$.count') ELSE 1 END"


def run_activity(db: Db, run_id: str) -> dict[str, Any]:
    # An allow a `store.unconfirmed` names was committed after its wait ended: the daemon
    # refused it, so it is counted apart, not as approved or allowed (as policy why and
    # policy shadow read it: store/decisions.py; review h144). A late deny took effect.
    rows = db.execute(
        "SELECT kind, json_extract(data, '$.action'), json_extract(data, '$.allow'), "
        f"sum({_EVENTS}), kind != 'approval.requested' AND COALESCE(json_extract(data, "
        "'$.action'), CASE WHEN json_extract(data, '$.allow') THEN 'allow' END) IS 'allow' AND "
        "id IN (SELECT json_extract(data, '$.event_id') FROM events WHERE run_id = ? AND "
        "kind = 'store.unconfirmed' AND json_extract(data, '$.event_id') IS NOT NULL) "
        "FROM events WHERE run_id = ? AND kind IN ('approval.requested', 'approval.decided', "
        "'policy.decision', 'net.decision', 'net.closed') GROUP BY 1, 2, 3, 5",
        (run_id, run_id),
    ).fetchall()
    out: dict[str, Any] = {"approvals_asked": 0, "approved": 0, "denied_by_person": 0,
                           "policy_allowed": 0, "policy_denied": 0, "net": {},
                           "allows_not_applied": 0}
    for kind, action, allow, n, late in rows:
        if late:
            out["allows_not_applied"] += n
        elif kind == "approval.requested":
            out["approvals_asked"] += n
        elif kind == "approval.decided":
            out["approved" if allow else "denied_by_person"] += n
        elif kind == "policy.decision":
            out["policy_allowed" if action == "allow" else "policy_denied"] += n
        elif kind == "net.decision":
            out["net"][action or "?"] = out["net"].get(action or "?", 0) + n
    count, up, down = db.execute(
        f"SELECT coalesce(sum({_EVENTS}), 0), coalesce(sum(json_extract(data, '$.bytes_up')), 0), "
        "coalesce(sum(json_extract(data, '$.bytes_down')), 0) FROM events "
        "WHERE run_id = ? AND kind = 'net.closed'", (run_id,)).fetchone()
    out["connections"] = {"count": count, "bytes_up": up, "bytes_down": down}
    return out
