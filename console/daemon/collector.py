"""The daemon's garbage-collector setting, made once the daemon has started.

Why: a run's gate serves every connection inside the daemon's loop, and each one allocates a
few hundred short-lived objects (tasks, futures, coroutines, records' dicts). At Python's
default young-generation threshold (700) the collector ran every few connections, and each
pass moved the objects of the connections still open into the older generations, whose
collections then walked them again. bench/gate.py (50 concurrent tunnels, instructions counted
under callgrind): 416k a tunnel at the default, 380k at 5000 (review h181). The older
generations keep their defaults; only objects in reference cycles wait longer (at most 5000
allocations), and the gate breaks its tunnels' cycles itself (splice.SplicedTunnel.stop).
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle_collector"]

YOUNG_THRESHOLD = 5000  # allocations between young-generation collections (Python's: 700)


def settle_collector() -> None:
    """Raise the young-generation threshold (see the module docstring); idempotent."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
