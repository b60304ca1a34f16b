"""Attack review h135: what a teammate on operator.sock can read or hold.

A. approval.preview (any watcher) answered a unified diff with three lines of the owner's config
   file around the edit: a `setenv` value (shown only as a fingerprint in every reload record)
   came back whole to a watcher. Secure: a watcher gets no preview, an approver only the lines
   the edit changes, the owner the whole diff.
B. A teammate's requests waiting for one of their two turns held their args (up to 4 MiB each)
   without a bound: 16 connections of 256 waiting requests, 16 GiB in the daemon. Secure: at
   most TEAMMATE_OPEN are open (tests/core/test_teammate_memory_h137.py).
"""

from __future__ import annotations

import json
import pwd
import subprocess
from pathlib import Path
from typing import Any

from tests.approvals.test_inbox_and_team_attacks import (
    deny_all,
    owner_call,
    pending_rows,
    root_only,
    start_agent,
    team_daemon,
)
from tests.conftest import needs_bwrap
from tests.core.test_team import APPROVER, WATCHER

SECRET = "s3cr3t-owner-token-h135"

MATE = r'''
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
for i, line in enumerate(sys.stdin):
    op, args = json.loads(line)
    f.write((json.dumps({"v": 1, "id": i, "op": op, "args": args}) + "\n").encode()); f.flush()
    while True:
        msg = json.loads(f.readline())
        if msg.get("id") == i:
            print(json.dumps(msg), flush=True); break
'''


def as_mate(user: str, sock: Path, tmp: Path, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    script = tmp / "mate.py"
    script.write_text(MATE)
    script.chmod(0o755)
    tmp.chmod(0o755)
    pw = pwd.getpwnam(user)
    out = subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={pw.pw_gid}", "--init-groups", "/usr/bin/python3",
         "-S", str(script), str(sock)], input="".join(json.dumps(c) + "\n" for c in calls),
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


@root_only
@needs_bwrap
def test_a_watcher_reads_nothing_of_the_owners_config_through_a_rule_preview(
        home: Path, daemon_env: dict[str, str], workspace: Path, tmp_path: Path) -> None:
    d = team_daemon(home, daemon_env, '[profiles.shell.exec]\nallow = ["echo"]\n\n'
                    f'[profiles.shell.setenv]\nOWNER_TOKEN = "{SECRET}"\n')
    (home / "config.toml").chmod(0o600)
    t = None
    try:
        t = start_agent(d, workspace, "ph-ask exec -- make deploy; echo rc=$?")
        rid = pending_rows(d)[0]["id"]
        mate_dir = tmp_path / "mate"
        mate_dir.mkdir()
        previews = [("approval.preview", {"id": rid, "allow": True}),
                    ("approval.preview", {"id": rid, "allow": False, "pattern": "zzz"})]
        for user in (WATCHER, APPROVER):
            answers = as_mate(user, d.sock, mate_dir, previews)
            assert SECRET not in json.dumps(answers), (user, answers)
            if user == WATCHER:
                assert all(a["error"]["code"] == "not-allowed" for a in answers), answers
            else:
                assert all(a["ok"] for a in answers), answers
                assert "+allow" in answers[0]["result"]["diff"], answers[0]
                assert '+forbid = ["zzz"]' in answers[1]["result"]["diff"], answers[1]
        assert SECRET in owner_call(d, "approval.preview", id=rid, allow=True)["diff"]  # the owner's own
    finally:
        deny_all(d)
        if t is not None:
            t.join(timeout=60)
        d.stop()
