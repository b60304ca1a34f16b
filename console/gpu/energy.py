"""Energy joined with tokens: fixed time windows, per-run attribution, derived figures.

Energy. Each GPU's consecutive samples make an interval whose energy is the NVML energy
counter's delta (exact, in mJ). When the counter is unsupported, went backwards (driver reload,
GPU reset) or cannot be trusted (first sample after a lost GPU), the interval's energy is the
trapezoid of the two power readings instead, and the window is marked `estimated`. An interval
is spread over the windows it overlaps in proportion to time. An interval longer than `gap_s`
(3 s, or 1.5 sample periods when sampling slower) makes every window it touches `invalid`: its
energy still counts in the totals (so attribution stays complete), but per-window ratios
(J/token, W, $/Mtok) leave those windows out.

Tokens. Gate events (per run) land in the window of their timestamp, or are spread over
[started, ts] when the request's start is known. Scraped server counters (all clients of a
local server) land in the window of the scrape.

In flight. The gate says when a request goes upstream (`begin`) and when its answer ended
(`end`, or its tokens event). A window that closes while a request that started before its end
is still in flight cannot be attributed yet (the tokens come at the end of the stream): its
energy and tokens join the pool, which never expires while a request is in flight. A window
that a finished request overlapped is busy, not idle, even when it holds no tokens.

Attribution, per window, in order: while a request is in flight the window pools; otherwise a
window (with the pool) that holds gate tokens is split among runs by their share of tokens
(prompt + completion); one that only requests without usage overlapped is split by their time
in flight; a window with scraped tokens but no gate tokens pools its energy, because the gate
learns a response's usage only when it ends while the server's counters move during
generation; a window with no tokens and no request at all is idle. When scraped tokens
exceed the gate's in the pool, the excess belongs to clients that do not go through the
gate: their share is "unmetered". A pool older than `carry_s` is unmetered too (never while
a request is in flight). Energy is kept in integer mJ and split by largest remainder, so
runs + idle + unmetered + pooled + open windows equal the total exactly.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from console.gpu.maths import cost_usd, counter_delta, derive, split_exact, trapezoid_mj

__all__ = ["CARRY_S", "GAP_S", "UNMETERED", "WINDOW_S", "EnergyLedger", "RunTotals", "Window",
           "cost_usd", "counter_delta", "derive", "split_exact", "trapezoid_mj"]

WINDOW_S = 5.0
GAP_S = 3.0
CARRY_S = 60.0
MAX_SPREAD_WINDOWS = 120  # a longer interval (suspend, a stuck driver) lands in its last window
MAX_IN_FLIGHT_S = 1800.0  # a request never ended (a lost event) stops holding windows after this
UNMETERED = "(unmetered)"


# --- windows -----------------------------------------------------------------------------------


@dataclass
class Window:
    index: int
    start: float
    end: float
    energy_mj: int = 0
    gpu_s: float = 0.0  # GPU-seconds covered by samples (for $/GPU-hour)
    sampled: dict[str, float] = field(default_factory=dict)  # GPU -> seconds its samples cover
    runs: dict[str, list[int]] = field(default_factory=dict)  # run -> [prompt, completion]
    scraped: bool = False  # a scrape succeeded in this window: server tokens come from it
    scraped_in: int = 0
    scraped_out: int = 0
    estimated: set[str] = field(default_factory=set)
    invalid: set[str] = field(default_factory=set)
    # Filled when the window closes:
    attributed: dict[str, int] = field(default_factory=dict)  # run or UNMETERED -> mJ
    attributed_gpu_s: dict[str, float] = field(default_factory=dict)
    kind: str = "open"  # open | attributed | pooled | idle

    @property
    def sampled_s(self) -> float:
        """Wall time the samples cover: a window where sampling began late is not a full one."""
        return max(self.sampled.values(), default=0.0)

    @property
    def gated_in(self) -> int:
        return sum(v[0] for v in self.runs.values())

    @property
    def gated_out(self) -> int:
        return sum(v[1] for v in self.runs.values())

    @property
    def tokens_in(self) -> int:
        """Server-level prompt tokens: the scrape's when there is one, else the gate's."""
        return self.scraped_in if self.scraped else self.gated_in

    @property
    def tokens_out(self) -> int:
        return self.scraped_out if self.scraped else self.gated_out


@dataclass
class RunTotals:
    tokens_in: int = 0
    tokens_out: int = 0
    energy_mj: int = 0
    gpu_s: float = 0.0

    def cost(self, price_kwh: float, price_gpu_hour: float) -> float:
        return cost_usd(self.energy_mj / 1000.0, self.gpu_s, price_kwh, price_gpu_hour)


class EnergyLedger:
    """Accumulates samples and tokens into windows and attributes each closed window.

    Not thread-safe: the service feeds it from its event loop only.
    """

    def __init__(self, window_s: float = WINDOW_S, gap_s: float = GAP_S,
                 carry_s: float = CARRY_S, keep: int = 720) -> None:
        self.window_s = float(window_s)
        self.gap_s = float(gap_s)
        self.carry_s = float(carry_s)
        self._open: dict[int, Window] = {}
        self.closed: deque[Window] = deque(maxlen=keep)
        self._last: dict[str, tuple[float, int | None, int | None]] = {}
        self._lost: dict[str, float] = {}  # GPU -> its last sample before it was lost
        self.runs: dict[str, RunTotals] = {}
        self.total_mj = 0
        self.idle_mj = 0
        self.idle_gpu_s = 0.0
        self.unmetered_mj = 0
        self.unmetered_gpu_s = 0.0
        self._pool_mj = 0
        self._pool_gpu_s = 0.0
        self._pool_scraped = 0
        self._pool_since: float | None = None
        self._pool_tokens: dict[str, int] = {}  # run -> gate tokens of pooled windows
        self._pool_busy: dict[str, float] = {}  # run -> in-flight seconds of pooled windows
        self._requests: dict[str, list[Any]] = {}  # key -> [run, start, end or None]
        self._closed_upto: int | None = None  # windows below this index are closed
        self.first_ts: float | None = None
        self.counter_resets = 0
        self.retired_mj = 0  # energy of runs dropped by forget(), still part of the total

    # --- input -----------------------------------------------------------------------------------

    def _index(self, ts: float) -> int:
        k = math.floor(ts / self.window_s)
        if self._closed_upto is not None and k < self._closed_upto:
            k = self._closed_upto  # late data for a closed window goes to the earliest open one
        return k

    def _window(self, k: int) -> Window:
        w = self._open.get(k)
        if w is None:
            w = self._open[k] = Window(k, k * self.window_s, (k + 1) * self.window_s)
        return w

    def _seen(self, ts: float) -> None:
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts

    def add_power(self, gpu: str, ts: float, energy_mj: int | None, power_mw: int | None,
                  *, fresh: bool = False, lost: bool = False) -> None:
        """One GPU sample. `fresh`: the counter cannot be compared with the previous reading.
        `lost`: the GPU did not answer; the next sample starts a new interval."""
        if lost:
            gone = self._last.pop(gpu, None)
            self._lost.setdefault(gpu, gone[0] if gone else ts)
            return
        since = self._lost.pop(gpu, None)
        if since is not None:  # back: the windows still open that it missed lack its energy
            for w in self._open.values():
                if w.start < ts and w.end > since:
                    w.invalid.add(_lost_reason(gpu))
        prev = self._last.get(gpu)
        self._last[gpu] = (ts, energy_mj, power_mw)
        self._seen(ts)
        if prev is None:
            return
        t0, e0, p0 = prev
        dt = ts - t0
        if dt <= 0:
            return  # the clock went backwards or a duplicate: nothing to integrate
        estimated: str | None = None
        invalid: str | None = None
        delta = None if fresh else counter_delta(e0, energy_mj)
        if delta is not None:
            mj = delta
        else:
            if e0 is not None and energy_mj is not None and energy_mj < e0:
                self.counter_resets += 1
                estimated = f"energy counter reset on GPU {gpu}; power integrated instead"
            elif fresh and e0 is not None:
                estimated = f"GPU {gpu} came back; power integrated instead of the counter"
            else:
                estimated = f"no energy counter on GPU {gpu}; power integrated"
            if p0 is not None and power_mw is not None:
                mj = trapezoid_mj(p0, power_mw, dt)
            elif p0 is not None or power_mw is not None:
                mj = round((p0 if p0 is not None else power_mw or 0) * dt)
            else:
                mj, invalid = 0, f"no power or energy reading on GPU {gpu}"
        if dt > self.gap_s:
            invalid = f"gap of {dt:.1f} s between samples on GPU {gpu}"
        self._spread(gpu, t0, ts, mj, estimated, invalid)

    def _spread(self, gpu: str, t0: float, t1: float, mj: int, estimated: str | None,
                invalid: str | None) -> None:
        self.total_mj += mj
        first, last = self._index(t0), self._index(max(t0, t1 - 1e-9))
        if last - first >= MAX_SPREAD_WINDOWS:
            first = last
            invalid = invalid or f"gap of {t1 - t0:.0f} s between samples"
        overlaps: dict[str, float] = {}
        for k in range(first, last + 1):
            start, end = k * self.window_s, (k + 1) * self.window_s
            overlaps[str(k)] = max(0.0, min(t1, end) - max(t0, start)) if first != last else 1.0
        if sum(overlaps.values()) <= 0:
            overlaps = {str(last): 1.0}
        parts = split_exact(mj, overlaps)
        span = sum(overlaps.values())
        for key, weight in overlaps.items():
            w = self._window(int(key))
            w.energy_mj += parts.get(key, 0)
            w.gpu_s += (t1 - t0) * weight / span
            w.sampled[gpu] = w.sampled.get(gpu, 0.0) + (t1 - t0) * weight / span
            if estimated:
                w.estimated.add(estimated)
            if invalid:
                w.invalid.add(invalid)

    def add_tokens(self, run_id: str, prompt: int, completion: int, ts: float,
                   started: float | None = None) -> None:
        """Gate-metered usage of one response of a run."""
        prompt, completion = max(0, int(prompt or 0)), max(0, int(completion or 0))
        totals = self.runs.setdefault(run_id, RunTotals())
        totals.tokens_in += prompt
        totals.tokens_out += completion
        self._seen(ts)
        if started is not None and started < ts:
            first, last = self._index(started), self._index(ts)
            if 0 < last - first < MAX_SPREAD_WINDOWS:
                weights = {str(k): max(0.0, min(ts, (k + 1) * self.window_s)
                                       - max(started, k * self.window_s))
                           for k in range(first, last + 1)}
                ins, outs = split_exact(prompt, weights), split_exact(completion, weights)
                for key in weights:
                    self._add_run_tokens(int(key), run_id, ins.get(key, 0), outs.get(key, 0))
                return
        self._add_run_tokens(self._index(ts), run_id, prompt, completion)

    def _add_run_tokens(self, k: int, run_id: str, prompt: int, completion: int) -> None:
        counts = self._window(k).runs.setdefault(run_id, [0, 0])
        counts[0] += prompt
        counts[1] += completion

    def begin(self, key: str, run_id: str, ts: float) -> None:
        """A request of a run went upstream; windows hold until it ends."""
        self._requests[key] = [run_id, float(ts), None]
        self._seen(ts)

    def end(self, key: str, ts: float) -> None:
        """The request's answer ended (with or without usage). Unknown keys are ignored."""
        req = self._requests.get(key)
        if req is not None and req[2] is None:
            req[2] = max(float(ts), req[1])

    @property
    def in_flight(self) -> int:
        return sum(1 for r in self._requests.values() if r[2] is None)

    def add_scraped(self, prompt: int, completion: int, ts: float) -> None:
        """A successful scrape of a local server's counters (deltas, possibly zero)."""
        w = self._window(self._index(ts))
        w.scraped = True
        w.scraped_in += max(0, int(prompt))
        w.scraped_out += max(0, int(completion))
        self._seen(ts)

    # --- closing and attribution -------------------------------------------------------------

    def close_until(self, ts: float) -> list[Window]:
        """Close (and attribute) every open window that ends at or before `ts`, in order."""
        upto = math.floor(ts / self.window_s)
        if self._closed_upto is None or upto > self._closed_upto:
            self._closed_upto = upto
        done = []
        for k in sorted(k for k in self._open if k < upto):
            w = self._open.pop(k)
            for gpu, since in self._lost.items():
                if since < w.end:  # a GPU lost in this window: its energy is missing
                    w.invalid.add(_lost_reason(gpu))
            self._attribute(w)
            self.closed.append(w)
            done.append(w)
        return done

    def flush(self) -> list[Window]:
        """Close everything (daemon stopping); pooled energy can no longer be matched."""
        done = self.close_until(max((w.end for w in self._open.values()), default=0.0))
        self._expire_pool()
        return done

    def _attribute(self, w: Window) -> None:
        busy, held = self._busy(w)
        gated = {run: v[0] + v[1] for run, v in w.runs.items() if v[0] + v[1] > 0}
        scraped = w.scraped_in + w.scraped_out
        if held or ((busy or self._pool_busy) and not gated and not self._pool_tokens):
            # A request is still streaming (its tokens come at its end), or requests without
            # usage overlapped: pool, with what is known of who was busy.
            self._pool_add(w, gated, busy, scraped)
            if held:
                w.kind = "pooled"
                return
            self._split_pool(w, self._pool_busy)
            return
        if gated or self._pool_tokens:
            self._pool_add(w, gated, busy, scraped)
            self._split_pool(w, dict(self._pool_tokens))
        elif scraped > 0:
            self._pool_add(w, gated, busy, scraped)
            w.kind = "pooled"
        else:
            self.idle_mj += w.energy_mj
            self.idle_gpu_s += w.gpu_s
            w.kind = "idle"
        if self._pool_since is not None and w.end - self._pool_since > self.carry_s:
            self._expire_pool()

    def _busy(self, w: Window) -> tuple[dict[str, float], bool]:
        """In-flight seconds per run inside the window, and whether a request that started
        before the window's end is still in flight. Forgets requests that ended before it."""
        busy: dict[str, float] = {}
        held = False
        for key, (run, start, end) in list(self._requests.items()):
            if end is None and w.end - start > MAX_IN_FLIGHT_S:
                end = self._requests[key][2] = start + MAX_IN_FLIGHT_S  # never ended: give up
            if start >= w.end:
                continue
            stop = w.end if end is None else min(end, w.end)
            if stop > w.start:
                busy[run] = busy.get(run, 0.0) + stop - max(start, w.start)
            if end is None:
                held = True
            elif end <= w.end:
                del self._requests[key]
        return busy, held

    def _pool_add(self, w: Window, gated: dict[str, int], busy: dict[str, float],
                  scraped: int) -> None:
        self._pool_mj += w.energy_mj
        self._pool_gpu_s += w.gpu_s
        self._pool_scraped += scraped
        for run, n in gated.items():
            self._pool_tokens[run] = self._pool_tokens.get(run, 0) + n
        for run, sec in busy.items():
            self._pool_busy[run] = self._pool_busy.get(run, 0.0) + sec
        if self._pool_since is None:
            self._pool_since = w.start

    def _split_pool(self, w: Window, weights: dict[str, float] | dict[str, int]) -> None:
        """Attribute the pool (this window included) by `weights`; the scraped tokens beyond
        the gate's belong to clients that do not pass through it."""
        shares: dict[str, float] = dict(weights)
        gated_sum = sum(self._pool_tokens.values())
        if self._pool_tokens and self._pool_scraped > gated_sum:
            shares[UNMETERED] = self._pool_scraped - gated_sum
        mj, gpu_s = self._pool_mj, self._pool_gpu_s
        w.attributed = split_exact(mj, shares)
        span = sum(v for v in shares.values() if v > 0)
        w.attributed_gpu_s = {k: gpu_s * v / span for k, v in shares.items() if v > 0}
        for key, part in w.attributed.items():
            if key == UNMETERED:
                self.unmetered_mj += part
                self.unmetered_gpu_s += w.attributed_gpu_s[key]
            else:
                totals = self.runs.setdefault(key, RunTotals())
                totals.energy_mj += part
                totals.gpu_s += w.attributed_gpu_s[key]
        self._pool_mj, self._pool_gpu_s, self._pool_scraped = 0, 0.0, 0
        self._pool_tokens, self._pool_busy = {}, {}
        self._pool_since = None
        w.kind = "attributed"

    def _expire_pool(self) -> None:
        if self._pool_tokens or self._pool_busy:  # flush(): the pool's owners are known
            w = Window(-1, 0.0, 0.0)
            self._split_pool(w, dict(self._pool_tokens) or self._pool_busy)
            return
        self.unmetered_mj += self._pool_mj
        self.unmetered_gpu_s += self._pool_gpu_s
        self._pool_mj, self._pool_gpu_s, self._pool_scraped = 0, 0.0, 0
        self._pool_since = None

    def forget(self, run_id: str) -> RunTotals | None:
        """Drop a finished run's totals once they are stored; its energy stays accounted."""
        totals = self.runs.pop(run_id, None)
        if totals is not None:
            self.retired_mj += totals.energy_mj
        return totals

    # --- reading ---------------------------------------------------------------------------------

    @property
    def closed_until(self) -> float | None:
        """Time up to which every window is closed (windows hold data only where some came)."""
        return None if self._closed_upto is None else self._closed_upto * self.window_s

    @property
    def pooled_mj(self) -> int:
        return self._pool_mj

    @property
    def open_mj(self) -> int:
        return sum(w.energy_mj for w in self._open.values())

    def accounted_mj(self) -> int:
        """Everything the total is made of; equal to total_mj at all times."""
        return (sum(t.energy_mj for t in self.runs.values()) + self.idle_mj + self.unmetered_mj
                + self._pool_mj + self.open_mj + self.retired_mj)

    def recent(self, span_s: float, *, price_kwh: float, price_gpu_hour: float,
               has_energy: bool) -> dict[str, Any]:
        """Live figures over the closed windows of the last `span_s` seconds: the whole
        server under "all", each run under "runs"."""
        if not self.closed:
            return {"all": None, "runs": {}, "windows": 0, "invalid_windows": 0}
        # The span ends where closing reached, not at the last window holding data: without
        # a GPU only tokens make windows, and a rate of the last burst would stay on.
        last_end = max(self.closed[-1].end, self.closed_until or 0.0)
        cutoff = last_end - span_s
        windows = [w for w in self.closed if w.end > cutoff]
        seconds = max(0.0, last_end - max(cutoff, self.first_ts if self.first_ts is not None
                                          else cutoff))
        prices = {"price_kwh": price_kwh, "price_gpu_hour": price_gpu_hour}
        everyone = _sum(windows, None)
        energy_j = everyone.pop("energy_j")
        result: dict[str, Any] = {
            "all": derive(seconds=seconds, energy_j=energy_j if has_energy else None,
                          **everyone, **prices),
            "runs": {},
            "windows": len(windows),
            "invalid_windows": sum(1 for w in windows if w.invalid),
            "invalid_reasons": sorted({r for w in windows for r in w.invalid})[:5],
        }
        runs = {r for w in windows for r in (*w.runs, *w.attributed) if r != UNMETERED}
        for run in sorted(runs):
            sums = _sum(windows, run)
            energy_j = sums.pop("energy_j")
            result["runs"][run] = derive(seconds=seconds, energy_j=energy_j if has_energy
                                         else None, **sums, **prices)
        return result


def _lost_reason(gpu: str) -> str:
    return f"GPU {gpu} lost: its energy is not measured"


def _sum(windows: Iterable[Window], run: str | None) -> dict[str, Any]:
    """Token and energy sums over windows, for all (run=None) or one run's share."""
    tin = tout = vin = vout = 0
    mj = 0
    gpu_s = valid_s = 0.0
    for w in windows:
        if run is None:
            a_in, a_out, a_mj, a_gs = w.tokens_in, w.tokens_out, w.energy_mj, w.gpu_s
        else:
            counts = w.runs.get(run, (0, 0))
            a_in, a_out = counts[0], counts[1]
            a_mj, a_gs = w.attributed.get(run, 0), w.attributed_gpu_s.get(run, 0.0)
        tin += a_in
        tout += a_out
        if not w.invalid:
            vin += a_in
            vout += a_out
            mj += a_mj
            gpu_s += a_gs
            valid_s += w.sampled_s
    return {"tokens_in": tin, "tokens_out": tout, "energy_j": mj / 1000.0,
            "energy_seconds": valid_s, "energy_tokens_in": vin, "energy_tokens_out": vout,
            "gpu_s": gpu_s}
