"""The arithmetic of energy and tokens, without state: counter deltas, the trapezoid, exact
integer splits, cost, and the derived figures of a span (console/gpu/energy.py holds the
windows that feed them)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Prices default to 0, which is "not set", not "free": a cost made of them is unknown.
NO_PRICE = "no price set: [gpu] price_kwh ($ per kWh) or price_gpu_hour ($ per GPU-hour)"


def priced(price_kwh: float, price_gpu_hour: float) -> bool:
    return price_kwh > 0 or price_gpu_hour > 0


def counter_delta(prev_mj: int | None, cur_mj: int | None) -> int | None:
    """Energy between two counter readings; None when unknown (missing, or the counter reset)."""
    if prev_mj is None or cur_mj is None or cur_mj < prev_mj:
        return None
    return cur_mj - prev_mj


def trapezoid_mj(p0_mw: float, p1_mw: float, dt_s: float) -> int:
    """mW times s is mJ: the mean of the two readings over the interval, rounded."""
    return round((p0_mw + p1_mw) / 2.0 * dt_s)


def split_exact(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split an integer by weight so the parts sum to `total` exactly (largest remainder;
    ties go to the earlier key, so the result is deterministic)."""
    positive = {k: float(w) for k, w in weights.items() if w > 0}
    wsum = sum(positive.values())
    if not positive or wsum <= 0:
        return {}
    floors: dict[str, int] = {}
    fracs: list[tuple[float, int, str]] = []
    for i, (k, w) in enumerate(positive.items()):
        exact = total * w / wsum
        floors[k] = math.floor(exact)
        fracs.append((exact - floors[k], -i, k))
    left = total - sum(floors.values())
    for _, _, k in sorted(fracs, reverse=True)[:left]:
        floors[k] += 1
    return floors


def cost_usd(energy_j: float, gpu_s: float, price_kwh: float, price_gpu_hour: float) -> float:
    """Energy at $/kWh plus GPU time at $/GPU-hour (1 kWh = 3.6 MJ)."""
    return energy_j / 3.6e6 * price_kwh + gpu_s / 3600.0 * price_gpu_hour


def run_figures(tokens_out: int, energy_j: float | None, cost: float | None,
                why: str, no_price: str = NO_PRICE) -> dict[str, Any]:
    """A run's totals as shown: energy, cost, J per output token and $ per million output
    tokens. No energy attributed (no GPU, or none of its windows closed yet) is unknown, not 0
    J and $0: a GPU draws power in every window it meters. `why` says why, under "missing";
    a cost of 0 for energy measured is no price set (`no_price`)."""
    out: dict[str, Any] = {"energy_j": None, "cost_usd": None, "j_per_token": None,
                           "usd_per_mtok": None, "missing": {}}
    if energy_j is None or energy_j <= 0 or cost is None:
        out["missing"] = dict.fromkeys(("energy_j", "cost_usd", "j_per_token", "usd_per_mtok"),
                                       why)
        return out
    out["energy_j"] = energy_j
    if tokens_out > 0:
        out["j_per_token"] = energy_j / tokens_out
    else:
        out["missing"]["j_per_token"] = "no output tokens"
    if cost <= 0:
        out["missing"].update(cost_usd=no_price, usd_per_mtok=no_price)
    else:
        out["cost_usd"] = cost
        if tokens_out > 0:
            out["usd_per_mtok"] = cost / tokens_out * 1e6
        else:
            out["missing"]["usd_per_mtok"] = "no output tokens"
    return out


def derive(*, tokens_in: int, tokens_out: int, seconds: float, energy_j: float | None,
           energy_seconds: float, energy_tokens_in: int, energy_tokens_out: int, gpu_s: float,
           price_kwh: float, price_gpu_hour: float) -> dict[str, Any]:
    """Figures for one span. Throughput uses every token over `seconds`; the energy ratios use
    only the valid windows (`energy_*`). A figure that cannot be computed is None, with its
    reason under "missing"."""
    out: dict[str, Any] = {"tokens_in": tokens_in, "tokens_out": tokens_out,
                           "seconds": round(seconds, 3), "missing": {}}
    missing: dict[str, str] = out["missing"]
    if seconds > 0:
        out["tok_s_out"] = tokens_out / seconds
        out["tok_s"] = (tokens_in + tokens_out) / seconds
    else:
        out["tok_s_out"] = out["tok_s"] = None
        missing["tok_s"] = missing["tok_s_out"] = "no time elapsed yet"
    names = ("energy_j", "watts", "j_per_token", "j_per_token_total", "tok_s_per_mw",
             "cost_usd", "usd_per_mtok")
    for n in names:
        out[n] = None
    if energy_j is None or energy_seconds <= 0:
        why = "no GPU energy readings" if energy_j is None else "no valid sample window yet"
        missing.update({n: why for n in names})
        return out
    out["energy_j"] = energy_j
    out["watts"] = energy_j / energy_seconds  # mean board power (all metered GPUs)
    cost = cost_usd(energy_j, gpu_s, price_kwh, price_gpu_hour)
    out["cost_usd"] = cost if priced(price_kwh, price_gpu_hour) else None
    if out["cost_usd"] is None:
        missing["cost_usd"] = missing["usd_per_mtok"] = NO_PRICE
    if energy_tokens_out > 0:
        out["j_per_token"] = energy_j / energy_tokens_out
        if out["cost_usd"] is not None:
            out["usd_per_mtok"] = cost / energy_tokens_out * 1e6
        # tok/s per MW of board power = (tokens/s) / (W / 1e6) = tokens * 1e6 / J.
        out["tok_s_per_mw"] = energy_tokens_out * 1e6 / energy_j if energy_j > 0 else None
        if energy_j <= 0:
            missing["tok_s_per_mw"] = "no energy measured"
    else:
        for n in ("j_per_token", "usd_per_mtok", "tok_s_per_mw"):
            missing.setdefault(n, "no output tokens in the window")
    if energy_tokens_in + energy_tokens_out > 0:
        out["j_per_token_total"] = energy_j / (energy_tokens_in + energy_tokens_out)
    else:
        missing["j_per_token_total"] = "no tokens in the window"
    return out
