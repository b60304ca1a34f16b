"""What may be stored: timestamps, text and JSON cleaned before they reach the queue; and
numbers read back from a file someone may have edited (`read_int`, `read_number`).

Cleaning happens in the producer's thread, so a bad value fails there (or is repaired there)
and can never make a whole batch, security events included, fail in the writer.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


# json's C encoder, made once: JSONEncoder.encode builds one on every call, which was most of
# the cost of a recorded event (1.8 -> 0.7 us a payload). The same text as
# json.dumps(value, separators=(",", ":"), allow_nan=False). Without json's table of the
# containers being written (it is bound into the encoder, and a shared one breaks across
# threads), a value that contains itself is caught by the recursion limit instead.
_encode = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False,
) if json.encoder.c_make_encoder is not None else None  # type: ignore[attr-defined]
_fallback = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def dumps(value: Any) -> str:
    """Compact JSON (ASCII, no NaN or infinity). TypeError for what JSON cannot hold,
    ValueError for NaN, infinity, and a value that contains itself or nests too deep."""
    try:
        return "".join(_encode(value, 0)) if _encode is not None else _fallback(value)
    except RecursionError:
        raise ValueError("a value that contains itself, or nests too deep, is not JSON") from None


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


def read_int(value: Any) -> int | None:
    """A stored integer as read back: None for anything else an edited file may hold."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_number(value: Any) -> float | None:
    """A stored finite number as read back (a float): None for anything else, an int past
    the float range too."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value) if math.isfinite(value) else None
    except OverflowError:
        return None
