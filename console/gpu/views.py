"""GPU readings and derived figures as people and JSON see them: display units, significant
digits, and "n/a: reason" where a value is missing."""

from __future__ import annotations

from typing import Any

from console.gpu.nvml import FIELDS, GpuSample

_UNITS = {"power_mw": ("power_w", 1e-3), "energy_mj": ("energy_counter_j", 1e-3),
          "power_limit_mw": ("power_limit_w", 1e-3), "mem_used": ("mem_used_mib", 1 / 2**20),
          "mem_total": ("mem_total_mib", 1 / 2**20)}


def _na(value: Any, why: str | None) -> Any:
    return value if value is not None else f"n/a: {why or 'not read'}"


def round_figure(value: Any) -> Any:
    # Significant digits, not decimals: a run's cost can be $0.00002 and must not read 0.
    return float(f"{value:.6g}") if isinstance(value, float) else value


# How a person should read the derived figures (the TUI's column headers, `gpu --json` users).
LABELS = {
    "tok_s_out": "output tokens/s", "tok_s": "tokens/s (prompt + output)",
    "watts": "W (mean board power, all metered GPUs)",
    "j_per_token": "J per output token (board energy)",
    "j_per_token_total": "J per token, prompt + output (board energy)",
    "tok_s_per_mw": "output tok/s per MW of board power",
    "cost_usd": "$ (energy at $/kWh + GPU time at $/GPU-hour)",
    "usd_per_mtok": "$ per million output tokens",
}


def present(figures: dict[str, Any] | None) -> dict[str, Any]:
    """Derived figures for people and JSON: numbers, or "n/a: reason"."""
    if not figures:
        return {}
    missing = figures.get("missing", {})
    return {k: round_figure(_na(v, missing.get(k))) for k, v in figures.items() if k != "missing"}


def totals_view(figures: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A run's totals (maths.run_figures) for people and JSON: each a number (energy to the
    mJ, as stored; the rest to 6 significant digits) or None, and the reason of each None."""
    why = figures.get("missing", {})
    values = {k: None if v is None else round(v, 3) if k == "energy_j" else round_figure(v)
              for k, v in figures.items() if k != "missing"}
    return values, {k: why.get(k, "not known") for k, v in values.items() if v is None}


def gpu_view(s: GpuSample) -> dict[str, Any]:
    """One GPU's latest readings in display units; a missing field reads "n/a: reason"."""
    out: dict[str, Any] = {"index": s.index, "name": s.name, "uuid": s.uuid, "lost": s.lost}
    for f in FIELDS:
        name, scale = _UNITS.get(f, (f, 1))
        value = getattr(s, f)
        out[name] = _na(round_figure(value * scale) if value is not None and scale != 1 else value,
                        s.missing.get(f))
    out["procs"] = [{"pid": p.pid, "run_id": p.run_id, "kind": p.kind,
                     "used_mib": _na(round(p.used_bytes / 2**20, 1) if p.used_bytes is not None
                                     else None, s.procs_missing or "not reported")}
                    for p in s.procs]
    if s.procs_missing:
        out["procs_missing"] = s.procs_missing
    out["run_memory_mib"] = {r: round(b / 2**20, 1) for r, b in s.run_memory().items()}
    return out
