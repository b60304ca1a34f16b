"""What may be stored: timestamps, text and JSON cleaned before they reach the queue.

Cleaning happens in the producer's thread, so a bad value fails there (or is repaired there)
and can never make a whole batch, security events included, fail in the writer.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def ts(value: float | None) -> float:
    """Epoch seconds as a finite float (an int would hash differently once read back)."""
    if value is None:
        return time.time()
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"timestamp must be a finite number, not {value!r}")
    return value


def text(value: Any) -> str:
    """Text SQLite and the chain can store as is: str, valid UTF-8 (no lone surrogates)."""
    if type(value) is not str:
        value = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value


def opt(value: Any) -> str | None:
    """Optional text (run id, actor, stream)."""
    return None if value is None else text(value)
