"""notify_command: a program the person chose, run for each new pending request.

The request's text goes on stdin, never in argv: arguments are visible to every user in ps.
The program runs in its own session and is fed from a worker thread, so a slow or stuck
notifier never holds the daemon's loop or the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import subprocess

from console.daemon.live_config import LiveConfig
from console.daemon.requests import Request

log = logging.getLogger("pilothouse.notify")


class Notifier:
    def __init__(self, config: LiveConfig) -> None:
        self.config = config

    def __call__(self, request: Request) -> None:
        command = self.config.cfg.notify_command
        if not command:
            return
        body = f"Pilothouse: run {request.run_id} asks: {request.summary()}\n"
        try:
            proc = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "PILOTHOUSE_REQUEST_ID": request.id,
                     "PILOTHOUSE_RUN_ID": request.run_id, "PILOTHOUSE_KIND": request.kind},
            )
        except OSError as exc:
            log.warning("notify_command %s failed: %s", shlex.join(command), exc)
            return

        def feed() -> None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                proc.communicate(body.encode(), timeout=30)

        asyncio.get_running_loop().run_in_executor(None, feed)
