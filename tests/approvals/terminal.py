"""`pilothouse ARGS` with a real pty as its terminal, for the tests that read what a person
sees there (one copy: test_cli_review, the approval reviews and the h162 table use it)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Mapping

from tests.conftest import BIN, Daemon


def at_a_terminal(d: Daemon, *args: str, answer: bytes | None,
                  size: tuple[int, int] | None = None,
                  env: Mapping[str, str] | None = None,
                  meanwhile: Callable[[], None] | None = None) -> tuple[int, str]:
    """Run `pilothouse ARGS` with a pty as its terminal (`size` = rows, columns); `answer` is
    typed once a question shows; `meanwhile` is called at every turn of the reading loop (a
    test's move while the command runs). Returns the exit status and what the terminal showed."""
    leader, follower = pty.openpty()
    if size is not None:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    proc = subprocess.Popen([str(BIN / "pilothouse"), *args],
                            env=dict(d.env if env is None else env), stdin=follower,
                            stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    seen, typed = b"", False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if meanwhile is not None:
            meanwhile()
        ready, _, _ = select.select([leader], [], [], 0.1 if meanwhile else 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        if answer is not None and not typed and b"[y/N]" in seen:
            os.write(leader, answer)
            typed = True
        if proc.poll() is not None and not ready:
            break
    proc.wait(timeout=30)
    os.close(leader)
    return proc.returncode, seen.decode(errors="replace").replace("\r\n", "\n")
