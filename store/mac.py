"""HMAC-SHA256 for the chain, its head, anchors and the witness: one module both the audit
chain and the witness build on (so neither imports the other for it)."""

from __future__ import annotations

import functools
import hashlib
from typing import Any


def hmac_sha256(key: bytes, msg: bytes) -> str:
    """HMAC-SHA256 (RFC 2104), hex. Same bytes as hmac.digest, from SHA-256 states with the
    padded key already absorbed: half the cost per row of OpenSSL's one-shot HMAC, which
    sets the key up again on every call."""
    inner, outer = keyed_states(key)
    h = inner.copy()
    h.update(msg)
    o = outer.copy()
    o.update(h.digest())
    return o.hexdigest()


@functools.lru_cache(maxsize=8)
def keyed_states(key: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256's inner and outer SHA-256 states with the padded key absorbed: copy one,
    update it, and the key's block is not hashed again."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return (hashlib.sha256(bytes(b ^ 0x36 for b in key)),
            hashlib.sha256(bytes(b ^ 0x5C for b in key)))
