"""The daemon raises the collector's young-generation threshold once it has started
(console/daemon/collector.py: a run's gate allocates a few hundred short-lived objects a
connection, and at Python's default of 700 the collector ran every few connections)."""

from __future__ import annotations

import ast
import time
from pathlib import Path

from console.daemon.collector import YOUNG_THRESHOLD
from tests.conftest import daemon_with_sitecustomize

# Written into the daemon's own Python (its sitecustomize): a thread that writes the
# collector's thresholds to a file named by its pid, again and again, for the test to read.
WATCH = """
import gc, os, threading, time

def _watch(path=os.environ["PH_TEST_GC"] + "." + str(os.getpid())):
    while True:
        with open(path + ".tmp", "w") as fh:
            fh.write(repr(gc.get_threshold()))
        os.replace(path + ".tmp", path)
        time.sleep(0.05)

threading.Thread(target=_watch, daemon=True).start()
"""


def test_daemon_raises_the_young_generation_threshold(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "gc"
    d = daemon_with_sitecustomize(home, {**daemon_env, "PH_TEST_GC": str(out)},
                                  tmp_path / "hooks", WATCH, "")
    d.start()
    try:
        assert d.proc is not None
        written = Path(f"{out}.{d.proc.pid}")
        seen = None
        for _ in range(200):  # the daemon answers before main() settles it: a moment later
            if written.exists():
                seen = ast.literal_eval(written.read_text())
                if seen[0] == YOUNG_THRESHOLD:
                    break
            time.sleep(0.05)
    finally:
        d.stop()
    assert seen is not None and seen[0] == YOUNG_THRESHOLD, \
        f"the daemon's collector thresholds stayed {seen}; expected {YOUNG_THRESHOLD} first"
    assert seen[1:] == (10, 10), seen  # the older generations keep Python's defaults
