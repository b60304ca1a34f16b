"""`pilothouse approve ID` at a terminal shows the request and waits for a `y`; the decision
then went out by id alone. Request ids are four letters and come back once a request is long
closed: if the shown request timed out while the person read it and the next request took its
id, the `y` approved that one, never shown. The decision now names the request shown (when it
was made), and the daemon refuses it for any other.

A real daemon (a sitecustomize in its environment gives every request the same id, so the
reuse happens every time), real bubblewrap, the real `ph-ask`; the terminal is a real pty.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

from tests.conftest import BIN, Daemon, daemon_with_sitecustomize, needs_bwrap
from tests.core.test_approvals_e2e import background, wait_pending

SAME_ID = '''
from console.daemon import inbox
inbox.Inbox._new_id = lambda self: "reqa"
'''


def pending_subject(d: Daemon) -> str | None:
    rows = json.loads(d.cli("approvals", "--json").stdout)
    return rows[0]["subject"] if rows else None


@needs_bwrap
def test_a_yes_decides_the_request_shown_not_the_next_one_under_its_id(
        home: Path, daemon_env: dict[str, str], workspace: Path, tmp_path: Path) -> None:
    d = daemon_with_sitecustomize(home, daemon_env, tmp_path / "hooks", SAME_ID,
                                  '[defaults]\napproval_timeout = "4s"\n')
    d.start()
    try:
        t, out = background(d, workspace, "ph-ask exec -- make shown; echo rc1=$?; "
                            "ph-ask exec -- make never-shown; echo rc2=$?")
        first = wait_pending(d)[0]
        assert (first["id"], first["subject"]) == ("reqa", "make shown")
        leader, follower = pty.openpty()
        cli_env = {k: v for k, v in d.env.items() if k != "PYTHONPATH"}
        proc = subprocess.Popen([str(BIN / "pilothouse"), "approve", "reqa"], env=cli_env,
                                stdin=follower, stdout=follower, stderr=follower, close_fds=True)
        os.close(follower)
        seen, typed = b"", False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if select.select([leader], [], [], 0.2)[0]:
                try:
                    seen += os.read(leader, 65536)
                except OSError:
                    break
            if not typed and b"[y/N]" in seen:
                assert b"make shown" in seen, seen
                # The person reads on; the shown request times out and the next one takes its id.
                while pending_subject(d) != "make never-shown":
                    assert time.monotonic() < deadline, d.log()
                    time.sleep(0.1)
                os.write(leader, b"y\n")
                typed = True
        proc.wait(timeout=30)
        while True:
            try:
                if not select.select([leader], [], [], 0.2)[0]:
                    break
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        os.close(leader)
        shown = seen.decode(errors="replace")
        assert typed, shown
        assert proc.returncode != 0, shown
        assert "not the one you were shown" in shown and "Traceback" not in shown, shown
        # The second request, still pending after that refused y, is denied here rather than
        # waited out (its timeout would deny it too): rc2 below is the same either way.
        d.cli("deny", "reqa", "--yes", check=False)
        t.join(timeout=60)
    finally:
        d.stop()
    text = out["result"].stdout
    assert "rc1=" in text and "rc1=0" not in text, text  # timed out: denied
    assert "rc2=" in text and "rc2=0" not in text, text  # never shown: not approved by that y
