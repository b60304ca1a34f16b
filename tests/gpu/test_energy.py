"""Energy maths against windows computed by hand (the arithmetic is in the comments), and
property tests that attribution always sums to the total."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.gpu.energy import (
    UNMETERED,
    EnergyLedger,
    cost_usd,
    counter_delta,
    derive,
    split_exact,
    trapezoid_mj,
)
from console.gpu.nvml import NvmlSampler
from tests.gpu.fake_nvml import FakeGpu, FakeNvml

PRICES = {"price_kwh": 0.30, "price_gpu_hour": 2.00}


def feed_counter(ledger: EnergyLedger, watts: float, times: list[float], start_j: float = 0.0,
                 gpu: str = "g0") -> None:
    """Samples of a GPU drawing `watts` steadily, with its energy counter."""
    for t in times:
        ledger.add_power(gpu, t, round((start_j + watts * t) * 1000), round(watts * 1000))


def test_pure_helpers() -> None:
    assert counter_delta(1_000, 1_500) == 500
    assert counter_delta(1_500, 1_000) is None  # went backwards: a reset, unknown
    assert counter_delta(None, 1_000) is None
    # (100 W + 200 W) / 2 over 1 s = 150 J = 150 000 mJ
    assert trapezoid_mj(100_000, 200_000, 1.0) == 150_000
    # 1000 split 1:1:1 -> 333.33 each, the one left over goes to the first (ties: earlier key)
    assert split_exact(1000, {"a": 1, "b": 1, "c": 1}) == {"a": 334, "b": 333, "c": 333}
    assert split_exact(10, {"a": 0, "b": 2}) == {"b": 10}
    assert split_exact(10, {}) == {}
    # 1 kWh = 3.6e6 J at $0.30 = $0.30, plus 1 GPU-hour at $2 = $2.30
    assert cost_usd(3.6e6, 3600, 0.30, 2.00) == pytest.approx(2.30)


def test_counter_window_attribution_and_figures() -> None:
    ledger = EnergyLedger(window_s=5)
    # One GPU at a steady 200 W, sampled each second from t=0 to t=10 (counter from 0 J).
    # Window 0 = [0, 5): intervals (0,1]..(4,5] = 5 x 200 J = 1000 J = 1 000 000 mJ.
    feed_counter(ledger, 200, [0, 1, 2])
    ledger.add_tokens("A", 100, 400, ts=2.0)  # A: 500 tokens
    ledger.add_tokens("B", 0, 100, ts=3.0)  # B: 100 tokens
    feed_counter(ledger, 200, [3, 4, 5])
    closed = ledger.close_until(5.0)
    assert [w.index for w in closed] == [0]
    w0 = closed[0]
    assert w0.energy_mj == 1_000_000 and w0.gpu_s == pytest.approx(5.0)
    assert w0.kind == "attributed" and not w0.invalid and not w0.estimated
    # A: 1 000 000 x 500/600 = 833 333.33 -> 833 333; B: x 100/600 = 166 666.67 -> 166 666;
    # 1 mJ left goes to the larger remainder (B, .67): B = 166 667. Sum = 1 000 000.
    assert w0.attributed == {"A": 833_333, "B": 166_667}
    feed_counter(ledger, 200, [6, 7, 8, 9, 10])
    (w1,) = ledger.close_until(10.0)
    assert w1.kind == "idle" and ledger.idle_mj == 1_000_000  # window 1: no tokens, 1000 J

    figures = ledger.recent(5, has_energy=True, **{k: v for k, v in PRICES.items()})
    # Only window 1 (the last 5 s) is in the span: idle, so no tokens and no J/token.
    assert figures["all"]["tokens_out"] == 0 and figures["all"]["j_per_token"] is None
    everything = ledger.recent(10, has_energy=True, **PRICES)["all"]
    # 10 s; 500 output tokens (A 400 + B 100) + 100 prompt; 2000 J over both windows:
    # tok/s out = 500/10 = 50; tok/s = 600/10 = 60; W = 2000/10 = 200;
    # J/token = 2000/500 = 4.0; tok/s per MW = 500 x 1e6 / 2000 = 250 000;
    # cost = 2000/3.6e6 x 0.30 + 10/3600 x 2.00 = 1.6667e-4 + 5.5556e-3 = 5.7222e-3 $;
    # $/Mtok = 5.7222e-3 / 500 x 1e6 = 11.444.
    assert everything["tok_s_out"] == pytest.approx(50)
    assert everything["tok_s"] == pytest.approx(60)
    assert everything["watts"] == pytest.approx(200)
    assert everything["j_per_token"] == pytest.approx(4.0)
    assert everything["tok_s_per_mw"] == pytest.approx(250_000)
    assert everything["cost_usd"] == pytest.approx(5.7222e-3, rel=1e-4)
    assert everything["usd_per_mtok"] == pytest.approx(11.444, rel=1e-3)
    run_a = ledger.recent(10, has_energy=True, **PRICES)["runs"]["A"]
    # A: 400 output tokens in 10 s = 40 tok/s; 833.333 J -> 2.0833 J/token; mean 83.3 W.
    assert run_a["tok_s_out"] == pytest.approx(40)
    assert run_a["j_per_token"] == pytest.approx(833.333 / 400)
    assert run_a["watts"] == pytest.approx(83.3333)
    assert ledger.runs["A"].energy_mj + ledger.runs["B"].energy_mj + ledger.idle_mj == 2_000_000


def test_window_figures_by_derive() -> None:
    # One 5 s window: 1000 J, 100 prompt + 500 output tokens, one GPU for 5 s.
    # tok/s out = 100; tok/s = 120; W = 200; J/token = 2.0; J/token (all) = 1000/600 = 1.667;
    # tok/s per MW = 500 x 1e6 / 1000 = 500 000 (= 100 tok/s at 0.0002 MW);
    # cost = 1000/3.6e6 x 0.30 + 5/3600 x 2 = 8.333e-5 + 2.7778e-3 = 2.8611e-3 $;
    # $/Mtok = 2.8611e-3 / 500 x 1e6 = 5.7222.
    f = derive(tokens_in=100, tokens_out=500, seconds=5, energy_j=1000.0, energy_seconds=5,
               energy_tokens_in=100, energy_tokens_out=500, gpu_s=5, **PRICES)
    assert (f["tok_s_out"], f["tok_s"], f["watts"], f["j_per_token"]) == (100, 120, 200, 2.0)
    assert f["j_per_token_total"] == pytest.approx(1.6667, rel=1e-4)
    assert f["tok_s_per_mw"] == pytest.approx(500_000)
    assert f["usd_per_mtok"] == pytest.approx(5.7222, rel=1e-4)
    assert f["tok_s_per_mw"] == pytest.approx(1e6 / f["j_per_token"])  # same quantity, inverted
    none = derive(tokens_in=0, tokens_out=0, seconds=5, energy_j=None, energy_seconds=0,
                  energy_tokens_in=0, energy_tokens_out=0, gpu_s=0, **PRICES)
    assert none["j_per_token"] is None and none["missing"]["j_per_token"] == "no GPU energy readings"


def test_trapezoid_fallback_when_no_counter() -> None:
    ledger = EnergyLedger(window_s=5)
    # Counter NotSupported: 100 W at t=0, 200 W at t=1, 300 W at t=2.
    # (100+200)/2 x 1 = 150 J; (200+300)/2 x 1 = 250 J; window 0 = 400 J, estimated.
    for t, w in ((0, 100), (1, 200), (2, 300)):
        ledger.add_power("g0", t, None, w * 1000)
    ledger.add_tokens("A", 0, 40, ts=1.5)
    (w0,) = ledger.close_until(5)
    assert w0.energy_mj == 400_000 and w0.estimated and not w0.invalid
    assert w0.attributed == {"A": 400_000}
    # 400 J / 40 tokens = 10 J/token (the window is estimated, not invalid)
    f = ledger.recent(5, has_energy=True, **PRICES)["all"]
    assert f["j_per_token"] == pytest.approx(10.0)


def test_gap_over_3s_flags_invalid_but_keeps_energy() -> None:
    ledger = EnergyLedger(window_s=10)
    # Samples at t=0 and t=4 (a 4 s gap), counter +800 J: window 0 holds 800 J but is invalid.
    ledger.add_power("g0", 0, 0, 200_000)
    ledger.add_power("g0", 4, 800_000, 200_000)
    ledger.add_tokens("A", 0, 80, ts=3)
    (w0,) = ledger.close_until(10)
    assert w0.energy_mj == 800_000 and any("gap of 4.0 s" in r for r in w0.invalid)
    assert ledger.runs["A"].energy_mj == 800_000  # attribution still complete
    f = ledger.recent(10, has_energy=True, **PRICES)
    assert f["invalid_windows"] == 1 and f["all"]["j_per_token"] is None
    assert f["all"]["missing"]["j_per_token"] == "no valid sample window yet"
    assert f["all"]["tok_s_out"] == pytest.approx(8.0)  # throughput does not need energy


def test_counter_reset_falls_back_to_power() -> None:
    ledger = EnergyLedger(window_s=5)
    # t=0: counter 5 000 J; t=1: 100 J (reset) -> that interval = trapezoid 200 W x 1 s = 200 J;
    # t=2: 300 J -> delta 200 J exact. Window 0 = 400 J, estimated, one reset counted.
    ledger.add_power("g0", 0, 5_000_000, 200_000)
    ledger.add_power("g0", 1, 100_000, 200_000)
    ledger.add_power("g0", 2, 300_000, 200_000)
    ledger.add_tokens("A", 0, 10, ts=2)
    (w0,) = ledger.close_until(5)
    assert w0.energy_mj == 400_000 and ledger.counter_resets == 1
    assert any("reset" in r for r in w0.estimated)


def test_interval_spread_over_windows_and_lost_gpu() -> None:
    ledger = EnergyLedger(window_s=5, gap_s=3)
    # Interval (4, 6], counter +400 J: 1 s in window 0 and 1 s in window 1 -> 200 J each.
    ledger.add_power("g0", 4, 0, 200_000)
    ledger.add_power("g0", 6, 400_000, 200_000)
    # GPU lost at t=7: no interval; it comes back at t=8 (fresh): no interval either.
    ledger.add_power("g0", 7, None, None, lost=True)
    ledger.add_power("g0", 8, 10, 200_000, fresh=True)
    ledger.add_power("g0", 9, 200_010, 200_000)  # +200 J in window 1
    ledger.add_tokens("A", 1, 1, ts=9)
    w0, w1 = ledger.close_until(10)
    assert (w0.energy_mj, w1.energy_mj) == (200_000, 400_000)
    assert w0.kind == "idle" and w1.attributed == {"A": 400_000}


def test_tokens_spread_over_the_response() -> None:
    ledger = EnergyLedger(window_s=5)
    feed_counter(ledger, 100, [float(t) for t in range(0, 11)])
    # A response from t=2.5 to t=7.5: 2.5 s in each window -> 50 of its 100 tokens in each.
    ledger.add_tokens("A", 0, 100, ts=7.5, started=2.5)
    w0, w1 = ledger.close_until(10)
    assert w0.runs["A"] == [0, 50] and w1.runs["A"] == [0, 50]
    assert ledger.runs["A"].tokens_out == 100 and ledger.runs["A"].energy_mj == 1_000_000


def test_scraped_tokens_pool_until_the_gate_reports() -> None:
    ledger = EnergyLedger(window_s=5)
    feed_counter(ledger, 200, [float(t) for t in range(0, 16)])
    # Window 0: the server generated 300 tokens (scrape), the gate has not reported: pooled.
    ledger.add_scraped(0, 300, ts=2)
    # Window 1: the response ends; the gate reports 50 + 300 for A. Pool (1000 J) + 1000 J
    # all go to A (350 gate tokens >= 300 scraped: nobody unmetered).
    ledger.add_scraped(0, 0, ts=7)
    ledger.add_tokens("A", 50, 300, ts=8)
    # Window 2: the server made 600 tokens, the gate saw only B's 300: half is unmetered.
    # 1000 J x 300/600 = 500 J to B, 500 J unmetered.
    ledger.add_scraped(0, 600, ts=11)
    ledger.add_tokens("B", 0, 300, ts=12)
    w0, w1, w2 = ledger.close_until(15)
    assert w0.kind == "pooled" and w1.kind == w2.kind == "attributed"
    assert w1.attributed == {"A": 2_000_000}
    assert w2.attributed == {"B": 500_000, UNMETERED: 500_000}
    assert w2.tokens_out == 600 and w1.tokens_out == 0  # server-level counts are the scrape's
    assert ledger.accounted_mj() == ledger.total_mj


def test_pool_expires_to_unmetered() -> None:
    ledger = EnergyLedger(window_s=5, carry_s=10)
    feed_counter(ledger, 100, [float(t) for t in range(0, 21)])
    for t in (1, 6, 11, 16):
        ledger.add_scraped(0, 10, ts=t)  # someone generates, never through the gate
    ledger.close_until(20)
    # Windows 0-2 pool (500 J each); at the end of window 2 the pool is 15 s old > 10 s:
    # 1500 J unmetered. Window 3 pools again; flush() gives up on it too.
    assert ledger.unmetered_mj == 1_500_000 and ledger.pooled_mj == 500_000
    ledger.flush()
    assert ledger.unmetered_mj == 2_000_000 and ledger.accounted_mj() == ledger.total_mj


def test_no_gpu_still_counts_tokens() -> None:
    ledger = EnergyLedger(window_s=5)
    ledger.add_tokens("A", 10, 90, ts=1)
    ledger.close_until(5)
    f = ledger.recent(5, has_energy=False, **PRICES)
    assert f["runs"]["A"]["tok_s_out"] == pytest.approx(22.5)  # 90 tokens / 4 s (t=1..5)
    assert f["runs"]["A"]["missing"]["j_per_token"] == "no GPU energy readings"


def test_sampler_to_ledger_with_a_counter_reset() -> None:
    gpu = FakeGpu(0, power_w=300.0)
    fake = FakeNvml([gpu])
    sampler, ledger = NvmlSampler(nvml=fake), EnergyLedger(window_s=5)
    for t in range(0, 6):
        if t:
            gpu.advance(1.0)
        if t == 3:
            gpu.energy_mj = 0  # driver reloaded between t=2 and t=3
        tick = sampler.sample_once(now=float(t))
        assert tick is not None
        g = tick.gpus[0]
        ledger.add_power(g.uuid or "0", tick.ts, g.energy_mj, g.power_mw, fresh=g.fresh)
    ledger.add_tokens("A", 0, 100, ts=4)
    (w0,) = ledger.close_until(5)
    # 5 intervals of 300 W x 1 s: 4 from the counter, 1 (the reset) from the trapezoid = 1500 J
    assert w0.energy_mj == 1_500_000 and ledger.counter_resets == 1


# --- properties ------------------------------------------------------------------------------

events = st.lists(
    st.one_of(
        st.tuples(st.just("sample"), st.floats(0.05, 6.0), st.one_of(st.none(), st.integers(0, 900)),
                  st.one_of(st.none(), st.integers(0, 700_000)), st.booleans(), st.booleans()),
        st.tuples(st.just("tokens"), st.sampled_from(["r1", "r2", "r3"]), st.integers(0, 5000),
                  st.integers(0, 5000), st.floats(0, 8)),
        st.tuples(st.just("scrape"), st.integers(0, 3000), st.integers(0, 3000)),
        st.tuples(st.just("close"),),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(events, st.sampled_from([1.0, 2.5, 5.0]), st.sampled_from([5.0, 30.0]))
def test_attribution_sums_exactly_to_the_total(evs: list[tuple], window_s: float,
                                               carry_s: float) -> None:
    ledger = EnergyLedger(window_s=window_s, carry_s=carry_s)
    t, counter = 0.0, {"a": 0, "b": 0}
    for ev in evs:
        if ev[0] == "sample":
            _, dt, joules, power, reset, on_b = ev
            t += dt
            gpu = "b" if on_b else "a"
            if joules is None:
                energy = None
            else:
                counter[gpu] = joules * 10 if reset else counter[gpu] + joules * 1000
                energy = counter[gpu]
            ledger.add_power(gpu, t, energy, power)
        elif ev[0] == "tokens":
            _, run, p, c, back = ev
            ledger.add_tokens(run, p, c, ts=t, started=t - back if back else None)
        elif ev[0] == "scrape":
            ledger.add_scraped(ev[1], ev[2], ts=t)
        else:
            for w in ledger.close_until(t):
                if w.attributed:
                    assert all(v >= 0 for v in w.attributed.values())
        assert ledger.accounted_mj() == ledger.total_mj
    ledger.flush()
    runs = sum(r.energy_mj for r in ledger.runs.values())
    assert runs + ledger.idle_mj + ledger.unmetered_mj == ledger.total_mj
    assert ledger.open_mj == 0 and ledger.pooled_mj == 0
    gpu_s = sum(r.gpu_s for r in ledger.runs.values()) + ledger.idle_gpu_s + ledger.unmetered_gpu_s
    assert math.isclose(gpu_s, sum(w.gpu_s for w in ledger.closed), rel_tol=1e-9, abs_tol=1e-6) \
        or len(ledger.closed) == ledger.closed.maxlen


@given(st.integers(0, 10**12), st.dictionaries(st.text(min_size=1, max_size=3),
                                                st.floats(0, 1e6), min_size=1, max_size=8))
def test_split_exact_sums_and_is_fair(total: int, weights: dict[str, float]) -> None:
    parts = split_exact(total, weights)
    wsum = sum(w for w in weights.values() if w > 0)
    if wsum <= 0:
        assert parts == {}
        return
    assert sum(parts.values()) == total
    for k, part in parts.items():
        assert abs(part - total * weights[k] / wsum) < 1 + total * 1e-12
