"""What the console knows, built only from what the daemon says (snapshots and bus events).

No Textual here: the app applies messages to this model and tells the screens what changed.
Several consoles stay in sync because each one's state comes from the same events.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

LIVE_STATES = ("starting", "running", "stopping")
TOKEN_WINDOW_S = 30.0
KEEP_ENDED_RUNS = 25


@dataclass(frozen=True)
class Change:
    """A part of the state changed: topic is runs, approvals, net, gpu or link."""

    topic: str
    key: str | None = None
    event: dict[str, Any] | None = None
    new: bool = False


@dataclass
class ConsoleState:
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    net: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=500))
    tokens: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)
    gpu: Any = None
    gpu_note: str = "waiting for the daemon"
    timeout_s: float = 120.0
    connected: bool = False
    link_text: str = "connecting to the daemon..."
    hello: dict[str, Any] = field(default_factory=dict)
    profiles: list[dict[str, Any]] = field(default_factory=list)
    # Requests known to be closed: a listing taken before they closed must not bring them back.
    closed: OrderedDict[str, None] = field(default_factory=OrderedDict)

    # --- snapshots -------------------------------------------------------------------------

    def load_runs(self, runs: list[dict[str, Any]]) -> list[Change]:
        """A runs.list answer (live runs, and ended ones with all=True)."""
        changes = [self._put_run(r) for r in runs]
        return [c for c in changes if c is not None]

    def ended_unknown(self, live_ids: set[str]) -> list[str]:
        """Runs we think are live that a live-only listing left out (their end was missed)."""
        return [rid for rid, r in self.runs.items()
                if r.get("state") in LIVE_STATES and rid not in live_ids]

    def load_approvals(self, rows: list[dict[str, Any]]) -> list[Change]:
        """An approvals.list answer: the pending set is exactly these."""
        changes: list[Change] = []
        wanted = {r["id"] for r in rows if r["id"] not in self.closed}
        for rid in [rid for rid in self.approvals if rid not in wanted]:
            del self.approvals[rid]
            changes.append(Change("approvals", rid))
        for row in rows:
            if row["id"] in self.closed:
                continue
            if row.get("expires_in") is not None and row.get("age") is not None:
                self.timeout_s = float(row["expires_in"]) + float(row["age"])
            new = row["id"] not in self.approvals
            self.approvals[row["id"]] = row
            if new:
                changes.append(Change("approvals", row["id"], new=True))
        if changes:
            self._sort_approvals()
        return changes

    # --- events ----------------------------------------------------------------------------

    def apply(self, event: dict[str, Any]) -> list[Change]:
        kind = str(event.get("kind", ""))
        if kind == "run.state" and isinstance(event.get("run"), dict):
            change = self._put_run(event["run"], from_event=True)
            return [change] if change else []
        if kind == "approval.requested":
            req = event.get("request") or {}
            if req.get("state", "pending") != "pending" or "id" not in req or req["id"] in self.closed:
                return []
            new = req["id"] not in self.approvals
            self.approvals[req["id"]] = req
            self._sort_approvals()
            return [Change("approvals", req["id"], event, new=new)]
        if kind == "approval.resolved":
            req = event.get("request") or {}
            self._close(req.get("id"))
            if self.approvals.pop(req.get("id"), None) is None:
                return [Change("resolved", req.get("id"), event)]
            return [Change("approvals", req.get("id"), event), Change("resolved", req.get("id"), event)]
        if kind in ("net.decision", "net.closed"):
            self.net.append(event)
            return [Change("net", event.get("run_id"), event)]
        if kind == "tokens":
            return self._tokens(event)
        if kind.startswith("gpu"):
            self.gpu = event
            self.gpu_note = ""
            return [Change("gpu", None, event)]
        return []

    def _close(self, request_id: str | None) -> None:
        if request_id:
            self.closed[request_id] = None
            while len(self.closed) > 2000:
                self.closed.popitem(last=False)

    def _tokens(self, event: dict[str, Any]) -> list[Change]:
        run_id = event.get("run_id")
        count = event.get("completion_tokens") or event.get("total_tokens") or 0
        if not run_id or not isinstance(count, int):
            return []
        ts = float(event.get("ts") or 0.0)
        window = self.tokens.setdefault(run_id, deque(maxlen=1000))
        window.append((ts, count))
        return [Change("runs", run_id)]

    def _put_run(self, run: dict[str, Any], *, from_event: bool = False) -> Change | None:
        rid = run.get("id")
        if not rid:
            return None
        old = self.runs.get(rid)
        merged = dict(old or {})
        if old is not None and old.get("state") not in LIVE_STATES and run.get("state") in LIVE_STATES:
            return None  # an ended run never comes back: this listing was taken before it ended
        if from_event and old is not None:
            # run.state carries no stats; keep the last sample until the next poll
            merged.update({k: v for k, v in run.items() if k != "stats"})
        else:
            merged.update(run)
        self.runs[rid] = merged
        self._trim_ended()
        return Change("runs", rid, new=old is None)

    def _trim_ended(self) -> None:
        ended = [rid for rid, r in self.runs.items() if r.get("state") not in LIVE_STATES]
        for rid in ended[:-KEEP_ENDED_RUNS] if len(ended) > KEEP_ENDED_RUNS else []:
            del self.runs[rid]

    def _sort_approvals(self) -> None:
        ordered = sorted(self.approvals.values(), key=lambda r: float(r.get("created_at") or 0))
        self.approvals = {r["id"]: r for r in ordered}

    # --- derived ---------------------------------------------------------------------------

    def pending(self, run_id: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.approvals.values() if run_id is None or r.get("run_id") == run_id]

    def oldest(self) -> dict[str, Any] | None:
        return next(iter(self.approvals.values()), None)

    def expires_in(self, req: dict[str, Any], now: float) -> float:
        return max(0.0, float(req.get("created_at") or now) + self.timeout_s - now)

    def token_rate(self, run_id: str, now: float) -> float | None:
        window = self.tokens.get(run_id)
        if not window:
            return None
        recent = sum(n for ts, n in window if now - ts <= TOKEN_WINDOW_S)
        return recent / TOKEN_WINDOW_S if recent else None

    def net_for(self, run_id: str) -> list[dict[str, Any]]:
        return [e for e in self.net if e.get("run_id") == run_id]

    def ordered_runs(self) -> list[dict[str, Any]]:
        return sorted(self.runs.values(), key=lambda r: float(r.get("started_at") or 0))
