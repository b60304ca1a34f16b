"""What the console knows, built only from what the daemon says (snapshots and bus events).

No Textual here: the app applies messages to this model and tells the screens what changed.
Several consoles stay in sync because each one's state comes from the same events.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from console.gate.usage import token_count
from console.protocol import LIVE_STATES
from store.runs_table import usage_counts
from widgets.format import live_first, printable

TOKEN_WINDOW_S = 30.0
KEEP_ENDED_RUNS = 25
GPU_HISTORY_S = 600.0  # what the GPU screen can plot: the last 10 minutes
GPU_STEP_S = 1.0  # at most one point a second per series (faster samples are averaged)
MAX_GPUS = 64
# Fields of the `gpu` op's answer that a gpu.sample event does not carry, kept across events.
GPU_STATIC = ("driver", "hz", "labels", "live_span_s", "window_s", "prices")
GPU_LIVE = ("status", "available", "ts", "gpus", "live", "runs")  # what a gpu.sample carries
USAGE_SPAN_S = 120.0  # CPU and memory per run kept for the run screen's sparklines


def _net_key(event: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(event.get(k)) for k in ("kind", "run_id", "host", "port", "action"))


@dataclass(frozen=True)
class Change:
    """A part of the state changed: topic is runs, approvals, net, gpu or link."""

    topic: str
    key: str | None = None
    event: dict[str, Any] | None = None
    new: bool = False


def number(value: Any) -> float | None:
    """A reading as a float; None for "n/a: reason", missing, bools and non-finite values."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class Series:
    """One bounded time series: one point per `step_s` bucket (samples in the same bucket are
    averaged), none older than `span_s` before the newest. Readings that are n/a leave a gap."""

    def __init__(self, span_s: float = GPU_HISTORY_S, step_s: float = GPU_STEP_S) -> None:
        self.span_s, self.step_s = span_s, step_s
        self._points: deque[list[float]] = deque(maxlen=int(span_s / step_s) + 2)  # [t, sum, n]

    def add(self, ts: float, value: Any) -> None:
        v = number(value)
        if v is None:
            return
        bucket = math.floor(ts / self.step_s) * self.step_s
        if self._points:
            last = self._points[-1]
            if bucket < last[0]:
                return  # older than what we have (a snapshot taken before the last event)
            if bucket == last[0]:
                last[1] += v
                last[2] += 1
                return
        self._points.append([bucket, v, 1])
        while self._points and self._points[0][0] < bucket - self.span_s:
            self._points.popleft()

    def points(self) -> list[tuple[float, float]]:
        return [(t, total / n) for t, total, n in self._points]

    def latest(self) -> float | None:
        return self._points[-1][1] / self._points[-1][2] if self._points else None

    def __len__(self) -> int:
        return len(self._points)


@dataclass
class GpuHistory:
    """The last GPU_HISTORY_S of gpu.sample events: power and use per GPU (by index), and the
    live throughput figures. Bounded in time, in points and in GPUs."""

    power: dict[str, Series] = field(default_factory=dict)
    util: dict[str, Series] = field(default_factory=dict)
    tok_s: Series = field(default_factory=Series)
    j_per_token: Series = field(default_factory=Series)

    def record(self, snap: dict[str, Any]) -> None:
        ts = number(snap.get("ts"))
        if ts is None:
            return
        gpus = snap.get("gpus")
        for gpu in gpus if isinstance(gpus, list) else []:
            if not isinstance(gpu, dict) or number(gpu.get("index")) is None:
                continue
            key = str(int(gpu["index"]))
            if key not in self.power and len(self.power) >= MAX_GPUS:
                continue
            self.power.setdefault(key, Series()).add(ts, gpu.get("power_w"))
            self.util.setdefault(key, Series()).add(ts, gpu.get("util_gpu"))
        live = snap.get("live") if isinstance(snap.get("live"), dict) else {}
        self.tok_s.add(ts, live.get("tok_s"))
        self.j_per_token.add(ts, live.get("j_per_token"))


@dataclass
class ConsoleState:
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    net: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=500))
    tokens: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)
    gpu: Any = None  # the `gpu` op's answer, then each gpu.sample merged in
    gpu_note: str = "waiting for the daemon"
    gpu_history: GpuHistory = field(default_factory=GpuHistory)
    timeout_s: float = 120.0
    connected: bool = False
    link_text: str = "connecting to the daemon..."
    hello: dict[str, Any] = field(default_factory=dict)
    profiles: list[dict[str, Any]] = field(default_factory=list)
    # Requests known to be closed (id -> when it was asked, None if not said): a listing taken
    # before they closed must not bring them back. A request asked at another time is another
    # request under a reused id (4 letters; the daemon keeps fewer closed ids out of reuse than
    # this remembers, and none across a restart): it is shown.
    closed: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    # Per run: CPU percent and memory (bytes) from each poll, for the run screen's sparklines.
    usage: dict[str, tuple[Series, Series]] = field(default_factory=dict)
    # Network events read from the history on attach: the same events may also come on the bus.
    _net_loaded: dict[tuple[str, ...], float] = field(default_factory=dict)

    def standing_refused(self) -> str | None:
        """Why this console may not make a standing rule (a profile rule, a grant everywhere),
        or None: they are the daemon owner's, who the daemon says we are (review h179)."""
        role = self.hello.get("role")
        if role == "operator":
            return None
        return (f"Profile rules and grants everywhere are the daemon owner's; you are "
                f"{printable(self.hello.get('user'))} ({printable(role)}). Decide once, for this "
                "run or for N minutes, or ask the owner to make the rule.")

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
        wanted = {r["id"] for r in rows if not self.was_closed(r)}
        for rid in [rid for rid in self.approvals if rid not in wanted]:
            del self.approvals[rid]
            changes.append(Change("approvals", rid))
        for row in rows:
            if self.was_closed(row):
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

    def load_net(self, rows: list[dict[str, Any]]) -> None:
        """History rows of network events (newest first, as the history op returns them): the
        feed as it was before this console attached, or while it was away."""
        self.net.clear()
        self._net_loaded.clear()
        for row in reversed(rows):
            data = row.get("data") if isinstance(row.get("data"), dict) else {}
            event = {**data, "kind": row.get("kind"), "run_id": row.get("run_id"), "ts": row.get("ts")}
            self.net.append(event)
            self._net_loaded[_net_key(event)] = float(event.get("ts") or 0)

    def record_usage(self, runs: list[dict[str, Any]], now: float) -> None:
        """A poll's CPU and memory per live run, kept as short series."""
        for run in runs:
            stats = run.get("stats") or {}
            if not stats or run.get("state") not in LIVE_STATES:
                continue
            cpu, mem = self.usage.setdefault(str(run["id"]), (Series(USAGE_SPAN_S), Series(USAGE_SPAN_S)))
            cpu.add(now, stats.get("cpu_percent"))
            mem.add(now, stats.get("rss_bytes"))
        for rid in [r for r in self.usage if r not in self.runs]:
            del self.usage[rid]

    def load_gpu(self, snapshot: Any, note: str = "") -> list[Change]:
        """The `gpu` op's answer (or None and why there is none)."""
        if isinstance(snapshot, dict):
            prev = self.gpu if isinstance(self.gpu, dict) else {}
            if (number(prev.get("ts")) or 0.0) > (number(snapshot.get("ts")) or 0.0):
                # a gpu.sample arrived while this answer was on its way: keep the newer readings
                snapshot = {**snapshot, **{k: prev[k] for k in GPU_LIVE if k in prev}}
            self.gpu, self.gpu_note = snapshot, ""
            self.gpu_history.record(snapshot)
        else:
            self.gpu, self.gpu_note = None, note or "the daemon sent no GPU data"
        return [Change("gpu")]

    # --- events ----------------------------------------------------------------------------

    def apply(self, event: dict[str, Any]) -> list[Change]:
        kind = str(event.get("kind", ""))
        if kind == "run.state" and isinstance(event.get("run"), dict):
            change = self._put_run(event["run"], from_event=True)
            # the event rides along: a run started or ended (a poll's changes carry none)
            return [Change("runs", change.key, event, change.new)] if change else []
        if kind == "approval.requested":
            req = event.get("request") or {}
            if req.get("state", "pending") != "pending" or "id" not in req or self.was_closed(req):
                return []
            new = req["id"] not in self.approvals
            self.approvals[req["id"]] = req
            self._sort_approvals()
            return [Change("approvals", req["id"], event, new=new)]
        if kind == "approval.resolved":
            req = event.get("request") or {}
            self._close(req.get("id"), req.get("created_at"))
            held = self.approvals.get(req.get("id"))
            if held is None or not self.was_closed(held):  # a new request under that id stays
                return [Change("resolved", req.get("id"), event)]
            del self.approvals[req["id"]]
            return [Change("approvals", req.get("id"), event), Change("resolved", req.get("id"), event)]
        if kind in ("net.decision", "net.closed"):
            loaded = self._net_loaded.pop(_net_key(event), None)
            if loaded is not None and abs(loaded - float(event.get("ts") or 0)) < 5:
                return []  # already read from the history on attach
            self.net.append(event)
            return [Change("net", event.get("run_id"), event)]
        if kind == "tokens":
            return self._tokens(event)
        if kind.startswith("gpu"):
            return self._gpu(kind, event)
        return []

    def _gpu(self, kind: str, event: dict[str, Any]) -> list[Change]:
        prev = self.gpu if isinstance(self.gpu, dict) else {}
        fields = {k: v for k, v in event.items() if k != "kind"}
        if kind == "gpu.sample":  # the whole live picture: only the static fields carry over
            self.gpu = {**{k: prev[k] for k in GPU_STATIC if k in prev}, **fields}
            self.gpu_history.record(self.gpu)
        else:
            self.gpu = {**prev, **fields}
        self.gpu_note = ""
        return [Change("gpu", None, event)]

    def _close(self, request_id: str | None, created_at: Any = None) -> None:
        if request_id:
            self.closed[request_id] = created_at
            self.closed.move_to_end(request_id)
            while len(self.closed) > 2000:
                self.closed.popitem(last=False)

    def was_closed(self, req: dict[str, Any]) -> bool:
        """`req` is one this console knows closed (the same id, asked at the same time)."""
        if req.get("id") not in self.closed:
            return False
        asked = self.closed[req["id"]]
        return asked is None or asked == req.get("created_at")

    def _tokens(self, event: dict[str, Any]) -> list[Change]:
        run_id = event.get("run_id")
        # Output tokens as the run's totals count them (not a prompt inside the total).
        count = usage_counts(token_count(event.get("prompt_tokens")),
                             token_count(event.get("completion_tokens")),
                             token_count(event.get("total_tokens")))[1]
        if not run_id:
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

    def gpu_runs(self) -> dict[str, dict[str, Any]]:
        """Per-run GPU figures: the daemon's rows, with the GPU memory each run holds summed
        over the GPUs (a gpu.sample carries it per GPU; the `gpu` op also per run)."""
        snap = self.gpu if isinstance(self.gpu, dict) else {}
        raw = snap.get("runs")
        rows = {str(k): dict(v) for k, v in raw.items() if isinstance(v, dict)} \
            if isinstance(raw, dict) else {}
        memory: dict[str, float] = {}
        gpus = snap.get("gpus")
        for gpu in gpus if isinstance(gpus, list) else []:
            held = gpu.get("run_memory_mib") if isinstance(gpu, dict) else None
            for run_id, mib in (held.items() if isinstance(held, dict) else ()):
                if number(mib) is not None:
                    memory[str(run_id)] = memory.get(str(run_id), 0.0) + float(mib)
        for run_id, mib in memory.items():
            rows.setdefault(run_id, {})["gpu_memory_mib"] = round(mib, 1)
        return rows

    def net_for(self, run_id: str) -> list[dict[str, Any]]:
        return [e for e in self.net if e.get("run_id") == run_id]

    def ordered_runs(self) -> list[dict[str, Any]]:
        """Live runs first, newest first: the order every console lists them in."""
        return sorted(self.runs.values(), key=live_first)
