"""The daemon's GPU and throughput part: sampler thread, scrapers, energy ledger, bus, store.

Data flow. The sampler thread hands each tick to the event loop (call_soon_threadsafe); every
other input (gate "tokens" events from the bus, scrape deltas) arrives on the loop too, so the
ledger is only ever touched from the loop. Per tick: the ledger takes each GPU's energy, the
windows that ended are attributed, and ONE `gpu.sample` event (all GPUs, live figures) is
published. No GPU: the status line says why and tokens are still counted.

Persistence (downsampled, so a week of 1 Hz sampling is not 600k rows per GPU):
- one "gpu.sample" event per GPU every `persist_every_s` (10 s): the latest readings plus the
  period's mean power and energy (from the counter when it was continuous);
- "gpu.status" when the status line changes (no GPU, GPU lost, back);
- per-run totals (tokens_in, tokens_out, energy_j, cost) into the runs table every
  `totals_every_s` (10 s) for the runs that changed, and at finish_run().
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import psutil

from console.gpu.energy import WINDOW_S, EnergyLedger, cost_usd
from console.gpu.maths import NO_PRICE, priced, run_figures
from console.gpu.nvml import GpuSample, NvmlSampler, Tick
from console.gpu.scrape import Scraper
from console.gpu.views import LABELS, gpu_view, present, round_figure, totals_view
from store.runs_table import run_totals, usage_counts, write_run_totals

log = logging.getLogger("pilothouse.gpu")

LIVE_SPAN_S = 30.0
ROOTS_REFRESH_S = 5.0
PID_CACHE_S = 10.0
class _Period:
    """One GPU's readings since its last stored row (for the row's mean power and energy)."""

    def __init__(self, ts: float, counter: int | None) -> None:
        self.ts, self.counter, self.power_sum, self.power_n = ts, counter, 0.0, 0
        self.continuous = counter is not None


class GpuService:
    """See the module docstring. Call start() and stop() on the daemon's loop; stop() before
    the store writer closes, so the final run totals are written."""

    def __init__(self, writer: Any, bus: Any, config: Any, runs: Any = None, *,
                 nvml: Any = None, subscribe_tokens: bool = True,
                 scrape_targets: list[str] | None = None, window_s: float = WINDOW_S,
                 persist_every_s: float = 10.0, totals_every_s: float = 10.0,
                 live_span_s: float = LIVE_SPAN_S, clock: Callable[[], float] = time.time) -> None:
        self.writer, self.bus, self.runs = writer, bus, runs
        self._config = config if callable(config) else (lambda: config)
        self._clock = clock
        cfg = self._config()
        self.ledger = EnergyLedger(window_s, gap_s=max(3.0, 1.5 / cfg.gpu_sample_hz))
        self.sampler = NvmlSampler(cfg.gpu_sample_hz, nvml=nvml, pid_to_run=self._pid_to_run,
                                   on_tick=self._from_thread, clock=clock)
        if scrape_targets is None:
            scrape_targets = list(getattr(cfg, "gpu_scrape", None) or
                                  [i for i in cfg.inference if _is_loopback(i)])
        self.scraper = Scraper(scrape_targets, on_delta=self._on_scrape, clock=clock) \
            if scrape_targets else None
        self.subscribe_tokens = subscribe_tokens
        self.persist_every_s, self.totals_every_s = persist_every_s, totals_every_s
        self.live_span_s = live_span_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._latest: Tick | None = None
        self._live: dict[str, Any] = {"all": None, "runs": {}}
        self._periods: dict[str, _Period] = {}
        self._written: dict[str, tuple[Any, ...]] = {}
        self._finishing: dict[str, float] = {}
        self._retired: set[str] = set()  # runs whose stored row is final
        self._last_totals = clock()
        self._last_status: str | None = None
        self._roots: dict[int, str] = {}
        self._roots_version = 0
        self._roots_at = -1e18
        self._pid_cache: dict[int, tuple[str | None, float, int]] = {}
        self.events_published = 0

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.sampler.start()
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="gpu-housekeeping"))
        if self.subscribe_tokens and self.bus is not None:
            sub = self.bus.subscribe(("tokens", "inference"))
            self._tasks.append(asyncio.create_task(self._tokens(sub), name="gpu-tokens"))
        if self.scraper is not None:
            self._tasks.append(asyncio.create_task(self.scraper.run(), name="gpu-scrape"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await asyncio.to_thread(self.sampler.stop)
        self.ledger.flush()
        try:
            await self._write_totals(set(self.ledger.runs))
        except Exception as exc:  # the store closed first: say so, do not block shutdown
            log.warning("GPU totals not stored at stop: %s", exc)

    # --- inputs ----------------------------------------------------------------------------------

    def _from_thread(self, tick: Tick) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(self.handle_tick, tick)

    def on_tokens(self, run_id: str, prompt_tokens: int | None, completion_tokens: int | None,
                  ts: float | None = None, source: str = "gate", started: float | None = None,
                  total_tokens: int | None = None) -> None:
        """Usage of one response of a run. Safe from any thread (hops onto the loop). With the
        default subscribe_tokens=True the gate's bus events already arrive here: do not also
        call it for those. `started` (the request's start, when known) spreads the tokens over
        the response's duration instead of landing them all at its end. source="server" means
        server-wide counter deltas (like a scrape): not a run's, run_id is ignored."""
        if self._loop is not None and not self._on_loop():
            self._loop.call_soon_threadsafe(lambda: self.on_tokens(
                run_id, prompt_tokens, completion_tokens, ts, source, started, total_tokens))
            return
        prompt, completion = usage_counts(prompt_tokens, completion_tokens, total_tokens)
        when = self._clock() if ts is None else float(ts)
        if source == "server":
            self.ledger.add_scraped(prompt, completion, when)
        else:
            self.ledger.add_tokens(run_id, prompt, completion, when, started)

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    async def _tokens(self, sub: Any) -> None:
        try:
            while True:
                self.handle_event(await sub.get())
        finally:
            self.bus.unsubscribe(sub)

    def handle_event(self, ev: dict[str, Any]) -> None:
        """A gate event from the bus, on the loop: `inference.start` / `inference.end` say
        when a run's request is in flight (so windows during a stream are not idle), `tokens`
        its usage, spread from the request's start and ending it."""
        kind, run_id = ev.get("kind"), ev.get("run_id")
        if not run_id:
            return  # bus.dropped: those tokens are lost to metering, nothing to do
        key = str(ev.get("request_id") or "")
        try:
            when = float(ev["ts"]) if ev.get("ts") is not None else self._clock()
            if kind == "inference.start" and key:
                self.ledger.begin(key, str(run_id), when)
            elif kind == "inference.end" and key:
                self.ledger.end(key, when)
            elif kind == "tokens":
                started = ev.get("started")
                self.on_tokens(str(run_id), ev.get("prompt_tokens"), ev.get("completion_tokens"),
                               when, "gate", float(started) if started is not None else None,
                               total_tokens=ev.get("total_tokens"))
                if key:
                    self.ledger.end(key, when)
        except (TypeError, ValueError, KeyError):
            log.warning("ignoring a malformed %s event: %r", kind, ev)

    def _on_scrape(self, url: str, prompt: int, generated: int, ts: float) -> None:
        self.ledger.add_scraped(prompt, generated, ts)

    # --- ticks -----------------------------------------------------------------------------------

    def handle_tick(self, tick: Tick) -> None:
        """One sampler tick, on the loop (public so tests can drive it without the thread)."""
        self._latest = tick
        for g in tick.gpus:
            key = g.uuid or str(g.index)
            self.ledger.add_power(key, tick.ts, g.energy_mj, g.power_mw, fresh=g.fresh,
                                  lost=g.lost)
            self._persist_gpu(key, g, tick.ts)
        self._status(tick.status)
        if self.ledger.close_until(tick.ts):
            self._refresh_live()
        self._publish(tick)
        if tick.gpus and any(g.procs for g in tick.gpus):
            self._refresh_roots(tick.ts)
        if tick.ts - self._last_totals >= self.totals_every_s:
            self._schedule_totals()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self.housekeep()
            except Exception:
                log.exception("GPU housekeeping failed")

    def housekeep(self) -> None:
        """Once a second, on the loop (public so tests can drive it by a fake clock): follow
        sample_hz changes; without ticks (no GPU, a stalled driver) close windows by the clock
        so token figures and totals keep moving."""
        cfg = self._config()
        if cfg.gpu_sample_hz != self.sampler.hz:  # config reloaded
            self.sampler.hz = cfg.gpu_sample_hz
            self.ledger.gap_s = max(3.0, 1.5 / self.sampler.hz)
        now = self._clock()
        quiet = self._latest is None or now - self._latest.ts > 3.0 / self.sampler.hz
        if not self.sampler.available or quiet:
            until = self.ledger.closed_until
            # Also when time moved on with no window to close (no GPU, no tokens): the live
            # figures still change (tokens/s falls to 0).
            if self.ledger.close_until(now) or self.ledger.closed_until != until:
                self._status(self.sampler.status)
                self._refresh_live()
                self._publish(None)
        if now - self._last_totals >= self.totals_every_s:
            self._schedule_totals()

    def _refresh_live(self) -> None:
        cfg = self._config()
        self._live = self.ledger.recent(self.live_span_s, price_kwh=cfg.price_kwh,
                                        price_gpu_hour=cfg.price_gpu_hour,
                                        has_energy=self.sampler.available)

    def _publish(self, tick: Tick | None) -> None:
        if self.bus is None:
            return
        event = {"kind": "gpu.sample", "ts": tick.ts if tick else self._clock(),
                 "status": self.sampler.status, "available": self.sampler.available,
                 "gpus": [gpu_view(g) for g in tick.gpus] if tick else [],
                 "live": present(self._live.get("all")), "runs": self._run_rows()}
        self.bus.publish(event)
        self.events_published += 1

    def _status(self, status: str) -> None:
        if status != self._last_status:
            self._last_status = status
            self.writer.record("gpu.status", actor="gpu", text=status,
                               data={"available": self.sampler.available})

    def _persist_gpu(self, key: str, g: GpuSample, ts: float) -> None:
        period = self._periods.get(key)
        if period is None or g.fresh:
            period = self._periods[key] = _Period(ts, g.energy_mj)
        if g.lost or g.energy_mj is None or (period.counter is not None
                                             and g.energy_mj < period.counter):
            period.continuous = False
        if g.power_mw is not None:
            period.power_sum += g.power_mw
            period.power_n += 1
        dt = ts - period.ts
        if dt < self.persist_every_s:
            return
        energy_j = avg_w = None
        if period.continuous and period.counter is not None and g.energy_mj is not None:
            energy_j = (g.energy_mj - period.counter) / 1000.0
            avg_w = energy_j / dt
        elif period.power_n:
            avg_w = period.power_sum / period.power_n / 1000.0
        view = gpu_view(g)
        view.pop("procs", None)
        data = {**view, "period_s": round(dt, 3), "avg_power_w": round_figure(avg_w),
                "energy_j": round_figure(energy_j), "procs": len(g.procs)}
        power = f"{g.power_mw / 1000:.0f} W" if g.power_mw is not None else "power n/a"
        util = f"{g.util_gpu}% util" if g.util_gpu is not None else "util n/a"
        text = (f"GPU{g.index} lost ({g.missing.get('power_mw')})" if g.lost else
                f"GPU{g.index} {g.name or ''}: {power}, {util}".replace("  ", " "))
        self.writer.record("gpu.sample", actor="gpu", text=text, data=data, ts=ts)
        self._periods[key] = _Period(ts, g.energy_mj)

    # --- runs and totals -------------------------------------------------------------------------

    def _totals_row(self, run_id: str) -> tuple[int, int, float, float]:
        cfg = self._config()
        t = self.ledger.runs[run_id]
        # Significant digits, not decimals: a short run's $0.0000014 must not be stored as
        # $0.000001 (and a ratio made of it 28% low).
        return (t.tokens_in, t.tokens_out, round(t.energy_mj / 1000.0, 3),
                round_figure(t.cost(cfg.price_kwh, cfg.price_gpu_hour)))

    def _schedule_totals(self) -> None:
        self._last_totals = self._clock()
        task = asyncio.ensure_future(self._write_totals(None))
        task.add_done_callback(lambda t: t.cancelled() or t.exception() is None or
                               log.warning("GPU totals not stored: %s", t.exception()))

    async def _write_totals(self, only: set[str] | None) -> None:
        """Store the tokens, energy and cost of the runs that changed."""
        now = self._clock()
        rows, adds = [], []
        for run_id in list(self.ledger.runs):
            if only is not None and run_id not in only:
                continue
            row = self._totals_row(run_id)
            if run_id in self._retired:
                # Energy attributed after the run's row was final (a very late window): add
                # it to the stored totals instead of overwriting them with this remainder.
                adds.append((*row, run_id))
                self.ledger.forget(run_id)
            elif self._written.get(run_id) != row:
                rows.append((*row, run_id))
                self._written[run_id] = row
        for run_id, deadline in list(self._finishing.items()):
            if now >= deadline and (only is None or run_id in only):
                # Late windows have closed: the row is final, the memory can go.
                self._finishing.pop(run_id)
                self.ledger.forget(run_id)
                self._written.pop(run_id, None)
                self._retired.add(run_id)
        if not rows and not adds:
            return

        try:
            await asyncio.wrap_future(
                self.writer.call(lambda db: write_run_totals(db.conn, rows, adds)))
        except Exception:
            for row in rows:  # not stored: write these again next time
                self._written.pop(row[-1], None)
            raise

    async def finish_run(self, run_id: str) -> dict[str, Any]:
        """A run ended: store its totals now. Its tokens may still share windows that have
        not closed, so its row keeps being updated for a window plus the carry time, then its
        totals leave memory (report() then answers from the runs table via areport())."""
        self._finishing[run_id] = self._clock() + 2 * self.ledger.window_s + self.ledger.carry_s
        if run_id in self.ledger.runs:
            self._written.pop(run_id, None)
            await self._write_totals({run_id})
        return self.report(run_id)

    def _refresh_roots(self, now: float) -> None:
        """Host PIDs of live runs (sandbox trees), for mapping GPU processes to runs."""
        if self.runs is None or now - self._roots_at < ROOTS_REFRESH_S:
            return
        self._roots_at = now
        roots: dict[int, str] = {}
        for run_id, run in list(getattr(self.runs, "runs", {}).items()):
            for pid in getattr(run, "pids", []) or []:
                roots[int(pid)] = run_id
            handle = getattr(self.runs, "handles", {}).get(run_id)
            if handle is not None:
                try:
                    for pid in handle.host_pids():
                        roots[int(pid)] = run_id
                except (psutil.Error, OSError):
                    pass
        if roots != self._roots:
            self._roots = roots  # swapped whole: the sampler thread reads it without a lock
            self._roots_version += 1

    def _pid_to_run(self, pid: int) -> str | None:
        """Called in the sampler thread. A process started since the last refresh is found
        by walking its ancestors up to a run's root."""
        roots, version = self._roots, self._roots_version
        if pid in roots:
            return roots[pid]
        now = time.monotonic()
        hit = self._pid_cache.get(pid)
        if hit is not None and hit[2] == version and now - hit[1] < PID_CACHE_S:
            return hit[0]
        run = None
        try:
            for parent in psutil.Process(pid).parents():
                if parent.pid in roots:
                    run = roots[parent.pid]
                    break
        except psutil.Error:
            pass
        if len(self._pid_cache) > 4096:
            self._pid_cache.clear()
        self._pid_cache[pid] = (run, now, version)
        return run

    # --- reading ---------------------------------------------------------------------------------

    def _run_rows(self) -> dict[str, Any]:
        rows: dict[str, Any] = {}
        for run_id, t in self.ledger.runs.items():
            live = present(self._live.get("runs", {}).get(run_id))
            shown, why = self._run_figures(run_id)
            rows[run_id] = {**live, "total_tokens_in": t.tokens_in,
                            "total_tokens_out": t.tokens_out,
                            **{f"total_{k}": f"n/a: {why[k]}" if shown[k] is None else shown[k]
                               for k in ("energy_j", "cost_usd")}}
        return rows

    def _run_figures(self, run_id: str) -> tuple[dict[str, Any], dict[str, str]]:
        """A run in memory: its energy, cost and ratios from the unrounded totals, and why
        each one that is None is not known."""
        cfg, t = self._config(), self.ledger.runs[run_id]
        why = (self.sampler.status if not self.sampler.available else
               "no GPU energy attributed to this run yet (its windows have not closed)")
        return totals_view(run_figures(t.tokens_out, t.energy_mj / 1000.0,
                                       t.cost(cfg.price_kwh, cfg.price_gpu_hour), why))

    def snapshot(self) -> dict[str, Any]:
        """Everything the `gpu` op shows."""
        cfg, tick, led = self._config(), self._latest, self.ledger
        memory: dict[str, float] = {}
        for g in tick.gpus if tick else []:
            for run_id, mib in gpu_view(g)["run_memory_mib"].items():
                memory[run_id] = round(memory.get(run_id, 0.0) + mib, 1)
        runs = self._run_rows()
        for run_id, mib in memory.items():
            runs.setdefault(run_id, {})["gpu_memory_mib"] = mib
        return {
            "status": self.sampler.status, "available": self.sampler.available,
            "driver": self.sampler.driver, "hz": self.sampler.hz,
            "ts": tick.ts if tick else None,
            "gpus": [gpu_view(g) for g in tick.gpus] if tick else [],
            "live": present(self._live.get("all")), "live_span_s": self.live_span_s,
            "runs": runs,
            "energy": {**self._energy_totals(), "counter_resets": led.counter_resets,
                       "in_flight": led.in_flight,
                       "idle_cost_usd": round_figure(cost_usd(
                           led.idle_mj / 1000.0, led.idle_gpu_s, cfg.price_kwh,
                           cfg.price_gpu_hour)) if priced(cfg.price_kwh, cfg.price_gpu_hour)
                       else f"n/a: {NO_PRICE}"},
            "servers": self.scraper.status() if self.scraper else [],
            "prices": {"usd_per_kwh": cfg.price_kwh, "usd_per_gpu_hour": cfg.price_gpu_hour},
            "window_s": led.window_s, "labels": LABELS,
        }

    def _energy_totals(self) -> dict[str, Any]:
        """The ledger's energy in J; "n/a: why" while no GPU was ever metered (not 0 J)."""
        led = self.ledger
        totals = {"total_j": led.total_mj, "idle_j": led.idle_mj,
                  "unmetered_j": led.unmetered_mj, "pending_j": led.pooled_mj + led.open_mj}
        if not self.sampler.available and led.total_mj == 0:
            return dict.fromkeys(totals, f"n/a: {self.sampler.status}")
        return {k: v / 1000.0 for k, v in totals.items()}

    def report(self, run_id: str) -> dict[str, Any]:
        """Tokens, energy and cost of one run, from memory ({"found": False} if unknown)."""
        t = self.ledger.runs.get(run_id)
        if t is None:
            return {"run_id": run_id, "found": False}
        cfg = self._config()
        shown, why = self._run_figures(run_id)
        return {"run_id": run_id, "found": True, "source": "live",
                "final": run_id in self._finishing and self._clock() >= self._finishing[run_id],
                "tokens_in": t.tokens_in, "tokens_out": t.tokens_out, **shown,
                "gpu_hours": round_figure(t.gpu_s / 3600.0) if shown["energy_j"] else None,
                "missing": why,
                "prices": {"usd_per_kwh": cfg.price_kwh, "usd_per_gpu_hour": cfg.price_gpu_hour}}

    async def areport(self, run_id: str) -> dict[str, Any]:
        """report(), falling back to the runs table for runs no longer in memory."""
        live = self.report(run_id)
        if live["found"]:
            return live

        row = await asyncio.wrap_future(self.writer.call(lambda db: run_totals(db.conn, run_id)))
        if row is None:
            return live
        tin, tout = row[0] or 0, row[1] or 0
        shown, why = totals_view(run_figures(
            tout, row[2], row[3], "no GPU energy was attributed to this run",
            "no price was set when the run's totals were stored ([gpu] price_kwh, "
            "price_gpu_hour)"))
        return {"run_id": run_id, "found": True, "source": "store", "final": True,
                "tokens_in": tin, "tokens_out": tout, **shown, "missing": why}


def _is_loopback(item: str) -> bool:
    host = item.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]").lower()
    return host in ("localhost", "::1") or host.startswith("127.")
