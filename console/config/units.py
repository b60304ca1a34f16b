"""The one grammar for durations and sizes a person writes: in the config, on the command line
(`--since 2h`, `--older-than 30d`) and in the console's history filter.

A duration is one or more parts, each a number and a unit, read as their sum: `500ms`, `90s`,
`10m`, `2h`, `7d`, `2w`, `1.5h`, `1h30m`. A number without a unit is seconds only where the
value is a number already (a TOML `approval_timeout = 120`); as text a unit is needed, so
`--older-than 30` is refused rather than read as thirty seconds. Zero is refused: nothing in
Pilothouse means anything by a duration of zero.
"""

from __future__ import annotations

import math
import re
from typing import Any

DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
DURATION_HINT = "like 90s, 30m, 2h, 7d or 1h30m"
# A unit alternative lists "ms" before "m" and "s" so 500ms is one part, not 500m and s.
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_DURATION_TEXT = re.compile(r"\s*(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w)\s*)+", re.IGNORECASE)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_duration(value: Any) -> float:
    """Seconds in `value`: a duration as text ("90s", "1h30m") or a number of seconds.
    ValueError, with the value and what to write instead, for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(_not_a_duration(value))
    if isinstance(value, str):
        if not _DURATION_TEXT.fullmatch(value):
            raise ValueError(_not_a_duration(value))
        seconds = sum(float(number) * DURATION_UNITS[unit.lower()]
                      for number, unit in _DURATION_PART.findall(value))
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a duration: it is too large; {DURATION_HINT}")
    if seconds <= 0:
        raise ValueError(f"{value!r}: a duration must be more than zero")
    return seconds


def _not_a_duration(value: Any) -> str:
    return (f"{value!r} is not a duration: write a number and a unit (ms, s, m, h, d, w), "
            f"{DURATION_HINT}")


def parse_size(value: Any) -> int:
    """Bytes in `value`: '4g', '512m', '64k', '1.5g', '2GiB' or a number of bytes."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        size = value
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a size (write e.g. \"4g\", \"512m\")")
        amount = float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
        if not math.isfinite(amount):
            raise ValueError(f"{value!r} is not a size: it is too large")
        size = int(amount)
    if size <= 0:
        raise ValueError(f"{value!r}: a size must be more than zero")
    return size
