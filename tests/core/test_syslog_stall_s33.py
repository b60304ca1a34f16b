"""A real daemon whose `[audit] syslog` receiver stopped reading keeps working (review s33,
helper 121 finding A). Before, the copy of each witness line was sent in the store writer's
thread: once the receiver's queue (10 datagrams) was full, the writer hung in send(), every
security commit timed out after 30 s ("the store is stuck", with a hint about disk space),
`pilothouse history` hung, stop took 42 s, and the log said nothing. A timed-out run start was
then committed anyway (finding B): history held the start of a run reported "not started" and
`audit verify` called it tampering. A `udp://` name that did not resolve at start ended the
daemon with a raw socket.gaierror traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import BIN, Daemon


def test_a_stalled_syslog_receiver_costs_a_count_not_the_store(
        home: Path, daemon_env: dict[str, str], workspace: Path, tmp_path: Path) -> None:
    log_sock = tmp_path / "dev-log"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(log_sock))  # a syslog receiver that has stopped reading
    (home / "config.toml").write_text(f'[audit]\nsyslog = "{log_sock}"\n')
    d = Daemon(home, daemon_env)
    d.start()
    try:
        for i in range(12):  # each start and end is a security commit: a witness line each
            r = d.cli("run", "demo", "-w", str(workspace), "--", "true", check=False,
                      timeout=25)
            assert r.returncode == 0, (i, r.stderr, d.log())
        rows = json.loads(d.cli("history", "--kind", "run.started", "--json",
                                timeout=20).stdout)
        assert len(rows) == 12
        deadline = time.monotonic() + 10
        while "audit copy to syslog" not in d.log():  # the log says why copies are missing
            assert time.monotonic() < deadline, d.log()
            time.sleep(0.1)
        v = d.cli("audit", "verify", check=False, timeout=20)
        assert v.returncode == 0, v.stdout + v.stderr
        t0 = time.monotonic()
        assert d.stop(timeout=20) == 0
        assert time.monotonic() - t0 < 20
    finally:
        d.stop(timeout=20)
        rx.close()


def test_a_syslog_name_that_does_not_resolve_is_said_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[audit]\nsyslog = "udp://no-such-host.invalid:514"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    env["PILOTHOUSE_HOME"] = str(home)
    env["PILOTHOUSE_CONFIG"] = str(home / "config.toml")
    done = subprocess.run([str(BIN / "pilothouse"), "ps"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "gaierror" not in done.stderr, done.stderr
    assert "udp://no-such-host.invalid:514 does not resolve" in done.stderr, done.stderr
