"""A run's end that outlived its wait (runs.py, RunManager._finish) stays queued with the
run's row; if that batch then fails, neither is stored. Then, as when the end fails in time,
the run gains the note "could not record the end" and its row is queued again with it: else
the row kept saying the run was live (until the next start marked it lost), and nothing in
the history said its end was not recorded (review h132).

The callback runs in the writer's thread, which may hold the writer's lock while it fails
futures (a closing or dead writer), so nothing here queues from it: the note and the row go
from the daemon's loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("pilothouse.runs")


def note_if_it_fails(loop: asyncio.AbstractEventLoop, writer: Any, run: Any,
                     upsert: Callable[[Any], Any]) -> Callable[[concurrent.futures.Future[Any]], None]:
    """The done-callback for the end's future: on failure, note it and queue the row again."""

    def noted(exc: BaseException) -> None:
        run.notes.append(f"could not record the end: {exc}")
        try:
            writer.call(upsert(run))
        except Exception as err:  # a closed or dead writer: the next start marks it lost
            log.error("run %s: its end was not recorded (%s), nor its row: %s", run.id, exc, err)

    def done(fut: concurrent.futures.Future[Any]) -> None:
        if fut.cancelled() or (exc := fut.exception()) is None:
            return
        try:
            loop.call_soon_threadsafe(noted, exc)
        except RuntimeError:  # the loop is closed: the daemon is gone, reconcile marks it lost
            log.error("run %s: its end was not recorded: %s", run.id, exc)

    return done
