"""Every operation in the merged table x every role, against a real daemon in team mode with real
users: the owner is refused nothing, an approver only what is the owner's alone (prune, stopping
the daemon, reloading its config), a
watcher exactly the operations docs/protocol.md marks *decides*, an outsider everything (the
socket itself). A new operation that forgets its role check fails here."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from console.daemon.ops import table
from tests.conftest import Daemon
from tests.core.test_ops_table import documented
from tests.core.test_team import APPROVER, GROUP, OUTSIDER, WATCHER, _ensure_users, _open_parents

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="creating users needs root")

# Args that get past argument checks to the role check, where an op checks args first.
ARGS = {"prune": {"older_than_s": 10 * 365 * 86400}}
# Ops that end the daemon when they succeed: sent only by roles that must be refused them.
ENDS_DAEMON = {"daemon.stop"}

CALLER = textwrap.dedent("""
    import json, socket, sys
    sock, ops, extra = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    out = {}
    for i, name in enumerate(ops):
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(3)
            s.connect(sock)
        except OSError as e:
            out[name] = "connect:" + type(e).__name__
            continue
        s.sendall((json.dumps({"v": 1, "id": i, "op": name, "args": extra.get(name, {})}) + "\\n").encode())
        buf = b""
        try:
            while b"\\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except socket.timeout:
            out[name] = "served"  # a stream that is still streaming
            continue
        finally:
            s.close()
        msg = json.loads(buf.split(b"\\n")[0]) if buf else {}
        if "event" in msg or msg.get("ok"):
            out[name] = "served"
        else:
            out[name] = (msg.get("error") or {}).get("code", "closed")
    print(json.dumps(out))
""")


def call_every_op(user: str | None, d: Daemon, ops: list[str], script: Path) -> dict[str, str]:
    cmd = [sys.executable if user is None else "/usr/bin/python3", "-S", str(script),
           str(d.sock), json.dumps(ops), json.dumps(ARGS)]
    if user is not None:
        cmd[0:0] = ["setpriv", f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}",
                    "--init-groups"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_op_checks_every_role(home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    _ensure_users()
    (home / "config.toml").write_text(f'[team]\ngroup = "{GROUP}"\napprovers = ["{APPROVER}"]\n')
    _open_parents(home / "run")
    script = tmp_path / "caller.py"
    script.write_text(CALLER)
    os.chmod(tmp_path, 0o755)
    os.chmod(script, 0o644)
    names = sorted(table.OPERATIONS)
    decides = {n for n, d in documented().items() if d}
    assert decides == {n for n, op in table.OPERATIONS.items() if op.decides}
    d = Daemon(home, daemon_env)
    d.start()
    try:
        safe = [n for n in names if n not in ENDS_DAEMON]
        seen = {
            "owner": call_every_op(None, d, safe, script),
            "approver": call_every_op(APPROVER, d, names, script),
            "viewer": call_every_op(WATCHER, d, names, script),
            "outsider": call_every_op(OUTSIDER, d, names, script),
        }
        refused = {role: {n for n, code in got.items() if code == "not-allowed"}
                   for role, got in seen.items()}
        assert refused["owner"] == set(), seen["owner"]
        owner_only = {n for n, op in table.OPERATIONS.items() if op.owner_only}
        assert owner_only == {"daemon.stop", "config.reload"}
        assert refused["approver"] == {"prune"} | owner_only, seen["approver"]
        approvers_only = {n for n, op in table.OPERATIONS.items() if op.approvers_only}
        assert approvers_only == {"approval.preview"}  # the owner's config file (review h135)
        assert refused["viewer"] == decides | approvers_only, seen["viewer"]
        assert set(seen["viewer"]) == set(names)
        assert all(code.startswith("connect:") for code in seen["outsider"].values()), seen["outsider"]
        assert len(seen["outsider"]) == len(names)
        # Every refusal of a deciding op by a watcher is recorded with who tried it.
        rows = json.loads(d.cli("history", "--kind", "operator.denied_op", "--limit", "200",
                                "--json").stdout)
        tried = {r["data"]["op"] for r in rows if r["actor"] == WATCHER}
        assert tried == decides | approvers_only
        tried = {r["data"]["op"] for r in rows if r["actor"] == APPROVER}
        assert tried == {"prune"} | owner_only
        assert d.proc is not None and d.proc.poll() is None, "the approver stopped the daemon"
    finally:
        d.stop()
