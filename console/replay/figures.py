"""InferenceX's figures for one replay step, from the requests' timings and the step's energy.

Definitions (every figure is over the step: from its first request sent to its last answer):
- Prompt tokens: as the server reports them in the usage; for an answer without usage (a
  stream from a server that ignores stream_options, such as llama-cpp-python's), the length
  the trace asked for. `tokens_in_source` says which: server, trace, or server+trace.
- tok/s: (prompt + output) tokens / step seconds; output tok/s likewise; per GPU: divided by
  the GPUs serving the model (NVML's count, or what the person says).
- tok/s per user (interactivity, InferenceX's x axis): the median over requests of output
  tokens after the first / (end - first token), i.e. 1 / TPOT of a typical request.
- TTFT: first content byte - request sent. TPOT: (end - first token) / (output tokens - 1).
  ITL: gaps between content events. E2E: end - request sent. p50/p90/p99 by linear
  interpolation, in milliseconds.
- Energy: the NVML energy counter's difference over exactly the step, all GPUs measured.
  J per input token, per output token and per token (input + output).
- tok/s per MW: output tok/s per MW of board power (energy / step seconds). With an all-in kW
  per GPU set by the person (facility, cooling, networking: what InferenceX assumes), output
  tok/s per MW of (GPUs x all-in kW): the figure comparable with InferenceX's, labelled so.
- $/Mtok: (board energy at $/kWh + GPU-hours at $/GPU-hour) per million output tokens.
A figure that cannot be computed is None, with the reason under "missing".
"""

from __future__ import annotations

import math
from typing import Any

from console.replay.client import Result

LABELS = {
    "tok_s": "tokens/s (prompt + output)", "tok_s_out": "output tokens/s",
    "tok_s_per_gpu": "tokens/s per GPU (prompt + output)",
    "tok_s_out_per_gpu": "output tokens/s per GPU",
    "tok_s_per_user": "output tokens/s per user (1/TPOT, median request)",
    "j_per_token": "J per token, prompt + output (board energy)",
    "j_per_input_token": "J per prompt token (board energy)",
    "j_per_output_token": "J per output token (board energy)",
    "tok_s_per_mw_board": "output tok/s per MW of board power",
    "tok_s_per_mw_all_in": "output tok/s per MW all-in (GPUs x the kW per GPU you set; "
                           "InferenceX-comparable)",
    "usd_per_mtok": "$ per million output tokens (board energy + GPU-hours)",
}


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _pcts(name: str, values: list[float], out: dict[str, Any]) -> None:
    for q in (50, 90, 99):
        v = percentile(values, q)
        out[f"{name}_p{q}_ms"] = round(v * 1000, 3) if v is not None else None


def step_figures(results: list[Result], *, seconds: float, gpus: int,
                 energy_j: float | None, energy_why: str | None = None,
                 price_kwh: float = 0.0, price_gpu_hour: float = 0.0,
                 all_in_kw_per_gpu: float | None = None) -> dict[str, Any]:
    ok = [r for r in results if r.error is None]
    tin = sum(r.prompt_tokens if r.prompt_tokens is not None else r.sent_tokens or 0
              for r in ok)
    sources = {"server" if r.prompt_tokens is not None else "trace" for r in ok}
    tout = sum(r.output_tokens for r in ok)
    cached = sum(r.cached_tokens or 0 for r in ok)
    out: dict[str, Any] = {"requests": len(ok), "errors": len(results) - len(ok),
                           "seconds": round(seconds, 4), "gpus": gpus, "tokens_in": tin,
                           "tokens_out": tout, "tokens_cached": cached,
                           "tokens_in_source": "+".join(sorted(sources)) or None, "missing": {}}
    missing: dict[str, str] = out["missing"]
    errors = sorted({r.error for r in results if r.error})
    if errors:
        out["error_samples"] = errors[:3]
    rate = (lambda n: n / seconds) if seconds > 0 else (lambda n: None)
    out["tok_s"], out["tok_s_out"] = rate(tin + tout), rate(tout)
    out["tok_s_per_gpu"] = out["tok_s"] / gpus if out["tok_s"] is not None else None
    out["tok_s_out_per_gpu"] = out["tok_s_out"] / gpus if out["tok_s_out"] is not None else None
    ttft = [r.ttft for r in ok if r.ttft is not None]
    tpot, itl, user = [], [], []
    for r in ok:
        if r.first_token is not None and r.output_tokens > 1 and r.end > r.first_token:
            per = (r.end - r.first_token) / (r.output_tokens - 1)
            tpot.append(per)
            user.append(1.0 / per)
        itl += [b - a for a, b in zip(r.token_times, r.token_times[1:], strict=False)]
    _pcts("ttft", ttft, out)
    _pcts("tpot", tpot, out)
    _pcts("itl", itl, out)
    _pcts("e2e", [r.end - r.start for r in ok], out)
    out["tok_s_per_user"] = percentile(user, 50)
    if out["tok_s_per_user"] is None:
        missing["tok_s_per_user"] = "no request produced more than one output token"
    energy_names = ("energy_j", "watts", "cost_usd", "j_per_token", "j_per_input_token",
                    "j_per_output_token", "tok_s_per_mw_board", "usd_per_mtok")
    if energy_j is not None and energy_j <= 0 and seconds > 0:
        # A GPU draws power all the time: 0 J is a counter that did not count, not a measure.
        energy_j, energy_why = None, ("the GPUs' energy counters did not move during the step "
                                      "(too short for them to count)")
    if energy_j is None or seconds <= 0:
        for n in energy_names:
            out[n] = None
            missing[n] = energy_why or "no GPU energy readings"
    else:
        out["energy_j"] = round(energy_j, 3)
        out["watts"] = energy_j / seconds
        out["tok_s_per_mw_board"] = tout * 1e6 / energy_j
        cost = energy_j / 3.6e6 * price_kwh + gpus * seconds / 3600.0 * price_gpu_hour
        out["cost_usd"] = cost if price_kwh > 0 or price_gpu_hour > 0 else None
        for name, n, what in (("j_per_token", tin + tout, "tokens"),
                              ("j_per_input_token", tin, "prompt tokens"),
                              ("j_per_output_token", tout, "output tokens"),
                              ("usd_per_mtok", tout, "output tokens")):
            out[name] = (cost * 1e6 if name == "usd_per_mtok" else energy_j) / n if n else None
            if not n:
                missing[name] = f"no {what} in the step"
        if out["cost_usd"] is None:  # prices default to 0: not set, not free
            out["usd_per_mtok"] = None
            missing["cost_usd"] = missing["usd_per_mtok"] = (
                "no price set: --price-kwh or --price-gpu-hour ([gpu] price_kwh, price_gpu_hour)")
    if all_in_kw_per_gpu and out["tok_s_out"] is not None:
        out["tok_s_per_mw_all_in"] = out["tok_s_out"] / (gpus * all_in_kw_per_gpu / 1000.0)
    else:
        out["tok_s_per_mw_all_in"] = None
        missing["tok_s_per_mw_all_in"] = "set --all-in-kw (kW per GPU, all in) for this figure"
    for k, v in list(out.items()):
        if isinstance(v, float):
            out[k] = float(f"{v:.6g}")
    return out
