"""Docker's sweep of orphan containers: every container labelled with this installation's owner
key whose run is not live is removed (DockerBackend.reconcile; the daemon's start, core.py).

At the daemon's start the sweep runs beside its first answers in a thread of its own
(`StartSweep`), not in asyncio's default executor: asyncio.run joins that executor as it ends,
so an engine that accepted and never answered held a stopped daemon's exit for the Docker
client's 60 s timeout (review h146). A stop halts it between two removals: what it removed is
what the history records, and nothing is removed once the daemon has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

LABEL_RUN = "pilothouse.run"
LABEL_OWNER = "pilothouse.owner"  # owner_key(runs folder): reconcile touches only its own


def remove_orphans(client: Any, owner: str, live_run_ids: set[str],
                   sweep: StartSweep | None = None) -> list[str]:
    """Remove `owner`'s containers whose run is not live (blocking); the runs removed. With
    `sweep`, each removal is noted there as it ends, and none begins once it is halted."""
    removed = sweep.removed if sweep is not None else []
    labels = [LABEL_RUN, f"{LABEL_OWNER}={owner}"]
    for c in client.containers.list(all=True, filters={"label": labels}):
        run = c.labels.get(LABEL_RUN, "")
        if run in live_run_ids:
            continue
        if sweep is not None and not sweep.begin(run):
            break
        try:
            with contextlib.suppress(Exception):
                c.remove(force=True, v=True)
                removed.append(run)
        finally:
            if sweep is not None:
                sweep.removing = None
    return removed


class StartSweep:
    """The daemon's start sweep (no run is live yet) in a daemon thread; `done` is its future
    on the loop (every Docker start waits for it: docker.py)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.removed: list[str] = []  # appended to by the thread as each removal ends
        self.removing: str | None = None  # the run whose container is being removed now
        self._halted = False
        self._lock = threading.Lock()
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[list[str]] = self.loop.create_future()
        threading.Thread(target=self._run, name="docker-sweep", daemon=True).start()

    def begin(self, run: str) -> bool:
        with self._lock:
            if self._halted:
                return False
            self.removing = run
            return True

    def halt(self) -> bool:
        """No removal begins from now on; True if one is under way."""
        with self._lock:
            self._halted = True
            return self.removing is not None

    def _run(self) -> None:
        try:
            ok, _ = self.backend.usable()
            result: Any = remove_orphans(self.backend.client, self.backend.owner, set(), self) \
                if ok else []
            settle = self.done.set_result
        except BaseException as exc:  # noqa: BLE001 - handed to the loop, logged there
            result, settle = exc, self.done.set_exception
        with contextlib.suppress(RuntimeError):  # the loop is closed: the daemon has stopped
            self.loop.call_soon_threadsafe(
                lambda: None if self.done.done() else settle(result))
