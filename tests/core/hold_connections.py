"""The connection flood, run inside a sandbox by tests/core/test_bounds.py and
bench/daemon_attack.py: open N connections to a unix socket (or to the bridge at
127.0.0.1:3128), optionally send a partial request head on each, and hold them.

    python3 hold.py TARGET N PAYLOAD WAIT_S [until-closed]   (TARGET: a socket path, or "bridge")

Once all are open it writes .held ({"opened", "failed", "closed"}: how many connected, how
many could not, how many the daemon closed at once), holds until .release appears or WAIT_S
passes (with until-closed: or the daemon has closed every one of them), then prints a JSON report: closed at once, closed later (the daemon's timeouts),
failed, and the distinct replies the daemon sent.
Stdlib only: the sandbox's python3 runs it. `install` copies it into a workspace.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path


def install(workspace: Path, name: str = "hold.py") -> None:
    shutil.copyfile(__file__, workspace / name)


def connect(target: str) -> socket.socket:
    if target == "bridge":
        return socket.create_connection(("127.0.0.1", 3128), timeout=5)
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(target)
    except OSError:
        s.close()
        raise
    return s


def closed(s: socket.socket) -> tuple[bool, bytes]:
    """Whether the daemon has closed `s`, and whatever it said before closing."""
    try:
        data = s.recv(65536)
    except BlockingIOError:
        return False, b""
    except OSError:
        return True, b""
    if not data:
        return True, b""
    rest = b""
    s.setblocking(True)
    s.settimeout(1)
    try:
        while chunk := s.recv(65536):
            rest += chunk
    except OSError:
        pass
    return True, data + rest


def main() -> None:
    target, n, payload, wait = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), float(sys.argv[4])
    until_closed = sys.argv[5:] == ["until-closed"]
    socks: list[socket.socket] = []
    failed = 0
    for _ in range(n):
        try:
            s = connect(target)
            if payload:
                s.sendall(payload)
        except OSError:
            failed += 1  # the listen queue is full, or the process ran out of fds
            continue
        s.setblocking(False)
        socks.append(s)
    time.sleep(0.5)
    first = [closed(s) for s in socks]
    at_once = sum(c for c, _ in first)
    Path(".held").write_text(json.dumps({"opened": len(socks), "failed": failed, "closed": at_once}))
    later = [c for c, _ in first]
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not os.path.exists(".release"):
        if until_closed:  # nothing left to wait for once the daemon has closed them all
            later = [c or closed(s)[0] for s, c in zip(socks, later, strict=True)]
            if all(later):
                break
        time.sleep(0.1)
    later = [c or closed(s)[0] for s, c in zip(socks, later, strict=True)]
    replies = sorted({d.decode(errors="replace")[:200] for _, d in first if d})
    print(json.dumps({"closed_at_once": at_once, "closed_later": sum(later), "failed": failed,
                      "replies": replies}))


if __name__ == "__main__":
    main()
