"""notify_command runs for each new pending request; the request text comes on stdin only."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from tests.conftest import Daemon, needs_bwrap


@needs_bwrap
def test_notify_command_runs_per_request(home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    out = home / "notified"
    out.mkdir()
    (home / "config.toml").write_text(
        "[notify]\n"
        f'command = ["sh", "-c", "cat > {out}/$PILOTHOUSE_REQUEST_ID; ps -o args= -p $$ > {out}/argv-$PILOTHOUSE_REQUEST_ID"]\n'
    )
    d = Daemon(home, daemon_env)
    d.start()
    try:
        t = threading.Thread(target=lambda: d.cli(
            "run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c",
            "ph-ask exec -- deploy --token=SECRET123; echo rc=$?", check=False))
        t.start()
        request_id = None
        deadline = time.monotonic() + 30
        while request_id is None and time.monotonic() < deadline:
            pending = json.loads(d.cli("approvals", "--json").stdout)
            request_id = pending[0]["id"] if pending else None
            time.sleep(0.1)
        assert request_id
        deadline = time.monotonic() + 10
        while not (out / request_id).exists() or not (out / request_id).read_text():
            assert time.monotonic() < deadline, "the notify command did not run"
            time.sleep(0.1)
        body = (out / request_id).read_text()
        assert "deploy" in body  # the summary arrives on stdin
        # ps runs after cat: its file is there, and written, once it has run (a fixed 0.3 s
        # could end before it started on a loaded machine, or read its file still empty).
        argv_file = out / f"argv-{request_id}"
        deadline = time.monotonic() + 10
        while not argv_file.exists() or not argv_file.read_text().strip():
            assert time.monotonic() < deadline, "the notify command's ps did not run"
            time.sleep(0.05)
        argv = argv_file.read_text()
        assert "sh -c" in argv  # its own command line, read
        assert "SECRET123" not in argv and "deploy" not in argv
        d.cli("deny", request_id)
        t.join(timeout=30)
    finally:
        d.stop()
