"""Review h173: a teammate's powers over the owner's daemon, attacked with real second users
(setpriv) against a real root daemon in team mode."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap
from tests.core.test_team import APPROVER, GROUP, WATCHER, _ensure_users, _open_parents, as_user

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="creating users needs root")

# Sends one op N times down one connection (pipelined) and prints each answer's error code.
PIPELINE = textwrap.dedent("""
    import json, socket, sys
    sock, op, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(sock)
    s.sendall(b"".join((json.dumps({"v": 1, "id": i, "op": op, "args": {}}) + "\\n").encode()
                       for i in range(n)))
    buf, codes = b"", []
    while len(codes) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        while b"\\n" in buf:
            line, buf = buf.split(b"\\n", 1)
            msg = json.loads(line)
            codes.append("ok" if msg.get("ok") else (msg.get("error") or {}).get("code"))
    print(json.dumps(codes))
""")


def _pipeline(user: str, d: Daemon, op: str, n: int, script: Path) -> list[str]:
    done = subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}", "--init-groups",
         "/usr/bin/python3", "-S", str(script), str(d.sock), op, str(n)],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _team_daemon(home: Path, daemon_env: dict[str, str]) -> Daemon:
    _ensure_users()
    (home / "config.toml").write_text(f'[team]\ngroup = "{GROUP}"\napprovers = ["{APPROVER}"]\n')
    _open_parents(home / "run")
    d = Daemon(home, daemon_env)
    d.start()
    return d


def test_an_approver_cannot_reload_the_owners_config_nor_fill_the_history_with_reloads(
    home: Path, daemon_env: dict[str, str], tmp_path: Path
) -> None:
    """`config.reload` puts the owner's file in force (the daemon does so by itself when it
    changes): the owner's act. An approver's 200 reloads were 200 chained policy.changed rows,
    each re-closing and re-opening operator.sock to the group, and only the owner may prune."""
    d = _team_daemon(home, daemon_env)
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    os.chmod(tmp_path, 0o755)
    os.chmod(script, 0o644)
    try:
        codes = _pipeline(APPROVER, d, "config.reload", 200, script)
        assert set(codes) == {"not-allowed"}, codes
        out = as_user(APPROVER, d, "reload")
        assert out.returncode != 0 and "the daemon owner's alone" in out.stderr, out.stderr
        rows = json.loads(d.cli("history", "--kind", "policy.changed", "--limit", "500",
                                "--json").stdout)
        assert [r for r in rows if r["actor"] == APPROVER] == []
        denied = json.loads(d.cli("history", "--kind", "operator.denied_op", "--limit", "500",
                                  "--json").stdout)
        mine = [r for r in denied if r["actor"] == APPROVER]
        assert mine and len(mine) < 20, len(mine)  # folded: one row a second and a count
        assert d.cli("reload").returncode == 0  # the owner's still works
    finally:
        d.stop()


def test_a_team_group_no_system_can_look_up_is_refused_and_the_socket_matches_the_config(
    home: Path, daemon_env: dict[str, str]
) -> None:
    """TOML takes `group = "ph\\u0000team"`; the system's group look-up raises on it (not
    'no such group'). The reload put it in force, then failed before closing operator.sock:
    the old group kept the socket while every teammate's operation failed as internal."""
    d = _team_daemon(home, daemon_env)
    config = home / "config.toml"
    try:
        config.write_text(f'[team]\ngroup = "{GROUP}\\u0000x"\napprovers = ["{APPROVER}"]\n')
        out = d.cli("reload", check=False)
        assert out.returncode != 0 and "group" in out.stderr, out.stdout + out.stderr
        assert "bad-config" in out.stderr or "group name" in out.stderr, out.stderr
        # The old [team] table stays in force, and the socket is open exactly to it.
        assert oct(os.stat(d.sock).st_mode & 0o777) == "0o660"
        watched = as_user(WATCHER, d, "ps", "--json")
        assert watched.returncode == 0, watched.stderr
        assert "internal" not in d.log(), d.log()[-2000:]
    finally:
        d.stop()


@needs_bwrap
def test_an_approver_holds_at_most_teammate_runs_live_runs(
    home: Path, daemon_env: dict[str, str], tmp_path: Path, workspace: Path
) -> None:
    """Each live run holds ~23 of the daemon's descriptors (its sockets, gate, pipes) and a
    sandbox the daemon started, outside the approver's own process limits: an approver's runs
    were not bounded, and a loop of `pilothouse run` took the daemon (fd limit 20,000 here)
    towards its limit, the owner's runs and the store with it. A teammate may hold
    `teammate_runs` (8) live runs; the owner's are not counted."""
    d = _team_daemon(home, daemon_env)
    ws = tmp_path / "approver-ws"
    ws.mkdir()
    os.chown(ws, pwd.getpwnam(APPROVER).pw_uid, -1)
    os.chmod(tmp_path, 0o755)
    try:
        for _ in range(8):
            out = as_user(APPROVER, d, "run", "shell", "-w", str(ws), "--", "sleep", "300")
            assert out.returncode == 0, out.stderr
        out = as_user(APPROVER, d, "run", "shell", "-w", str(ws), "--", "sleep", "300")
        assert out.returncode != 0 and "teammate_runs" in out.stderr, out.stdout + out.stderr
        assert d.cli("run", "shell", "-w", str(workspace), "--", "sleep", "300").returncode == 0
        first = json.loads(d.cli("ps", "--json").stdout)
        mine = [r["id"] for r in first if r["actor"] == APPROVER]
        assert len(mine) == 8 and len(first) == 9
        assert as_user(APPROVER, d, "stop", mine[0]).returncode == 0
        again = as_user(APPROVER, d, "run", "shell", "-w", str(ws), "--", "sleep", "300")
        assert again.returncode == 0, again.stderr  # one ended: room for one more
    finally:
        d.stop()
