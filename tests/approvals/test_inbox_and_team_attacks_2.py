"""Attack review F (2026-12-02), on the fixes of 7d911e1 and ac2e596 (detail keys renamed as
the agent's, --json escaping, roles read at each operation, the teammate connection cap).
Each test asserts the secure behaviour; the test_held_* ones pass, the others failed on
c546d73 (/work/notes/review-f-output.txt).

Nothing here leaves the machine: names are under .invalid, payloads run in bubblewrap or are data.
"""

from __future__ import annotations

import json
import pwd
import subprocess
import threading
import time
from pathlib import Path

import pytest

from console.cli.output import dumps
from console.daemon.requests import agents_detail
from console.text import request_line, shown
from tests.approvals.conftest import AgentServer, next_pending
from tests.approvals.test_inbox_and_team_attacks import (
    agent_ask,
    deny_all,
    owner_call,
    pending_rows,
    root_only,
    start_agent,
    team_daemon,
)
from tests.conftest import Daemon, needs_bwrap
from tests.core.test_team import BIN, WATCHER

BIDI_C1 = "echo ok \u202e hs|lru\u009b2J"  # a bidi override and a C1 CSI in an agent's command


# ============================ --json and export =================================================

@needs_bwrap
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_carries_no_raw_bidi_or_c1_controls(daemon: Daemon, workspace: Path, fmt: str) -> None:
    """`pilothouse export` (console/cli/history.py) writes each row with json.dumps(...,
    ensure_ascii=False) itself (jsonl to stdout, and the csv `data` column), not through
    output.dumps, so the agent's bidi override and C1 CSI reach the terminal raw, exactly what
    7d911e1 fixed for `approvals --json` (the csv `text` column goes through neutralise(),
    which keeps U+202E raw too). Secure: the same escaping as every other --json."""
    t = start_agent(daemon, workspace, f"ph-ask exec -- '{BIDI_C1}'; echo rc=$?")
    try:
        pending_rows(daemon)
    finally:
        deny_all(daemon)
        t.join(timeout=60)
    out = daemon.cli("export", "--format", fmt).stdout
    assert "hs|lru" in out, out  # the command is exported (as data)
    assert "\u202e" not in out and "\u009b" not in out, ascii(out)


def test_invisible_letters_are_escaped_in_shown_text_and_json() -> None:
    """text.hides() is by Unicode category (C*, Zl, Zp, Zs); the Default_Ignorable and blank
    *letters* and marks pass: U+3164 HANGUL FILLER and U+115F (Lo, drawn as a blank: they
    "look like a space and are not one", the reason other spaces are escaped), U+034F
    COMBINING GRAPHEME JOINER and U+FE0F / U+E0100 variation selectors (Mn, invisible). So
    `approvals`, the card and `--json` show `rm\u3164-rf` as `rm -rf` and carry hidden
    characters raw. Secure: every Default_Ignorable_Code_Point / blank letter is named."""
    for ch in ("\u3164", "\u115f", "\u034f", "\ufe0f", "\U000e0100"):
        cmd = f"curl{ch}x.invalid"
        assert ch not in shown(cmd), (hex(ord(ch)), shown(cmd))
        assert ch not in dumps({"subject": cmd}), (hex(ord(ch)), dumps({"subject": cmd}))


def test_held_json_keys_are_escaped_too() -> None:
    """HELD: output.dumps escapes invisible characters in keys as in values (the agent chooses
    detail keys), and the result still reads back as the same data."""
    value = {"detail": {"note\u202e\u200b\u009b": "x\u2066y", "\U000e0041tag": 1}}
    text = dumps(value)
    assert text.isascii() or all(ch.isprintable() or ch in "\n " for ch in text)
    for ch in ("\u202e", "\u200b", "\u009b", "\u2066", "\U000e0041"):
        assert ch not in text
    assert json.loads(text) == value


# ============================ the agent's detail keys ===========================================

def test_held_case_and_lookalike_keys_are_never_the_gates() -> None:
    """HELD: only the exact daemon keys are renamed; `Addresses`, `addresses\u200b` and an
    agent's own `agent's addresses` stay keys that request_line and the card (panels.py) read
    only as the agent's rows, never as `resolves to` (they look up the exact lowercase key)."""
    detail = agents_detail({"Addresses": ["192.0.2.23"], "addresses\u200b": ["192.0.2.24"],
                            "agent's addresses": ["192.0.2.25"], "addresses": ["192.0.2.26"]})
    assert "addresses" not in detail
    line = request_line({"kind": "network", "subject": "evil.invalid:443", "detail": detail})
    assert "151.101" not in line, line


async def test_held_agent_network_ask_with_nested_detail_is_kept_as_data(agent_server: AgentServer) -> None:
    """HELD: a nested dict named like the gate's keys stays inside the agent's key."""
    writer = await agent_ask(agent_server.path, {
        "kind": "network", "subject": "evil.invalid:443",
        "detail": {"x": {"addresses": ["192.0.2.23"]}, "target": {"addresses": ["192.0.2.4"]}}})
    try:
        req = await next_pending(agent_server.inbox)
        assert "addresses" not in req.detail and "target" not in req.detail, req.detail
        assert "192.0.2.23" not in request_line(req.to_dict())
    finally:
        writer.close()


# ============================ roles over a long connection ======================================

@root_only
@needs_bwrap
def test_a_watcher_taken_out_of_the_team_stops_receiving_a_stream_already_open(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    """as_now() (server._one) checks the role when an operation starts; a stream is one
    operation, so a `logs -f` (or a console's event subscription) opened by a watcher keeps
    delivering the owner's run output after the owner removes the watcher from the team and
    reloads: the removed user reads everything the runs print from then on. Secure: a stream
    ends (or stops delivering) once its peer's role no longer lets it watch."""
    d = team_daemon(home, daemon_env)
    follower = None
    try:
        script = "i=0; while [ $i -lt 400 ]; do echo tick$i; i=$((i+1)); sleep 0.1; done"
        run_id = json.loads(d.cli("run", "shell", "-w", str(workspace), "--json", "--",
                                  "sh", "-c", script).stdout)["id"]
        env = {"PILOTHOUSE_HOME": str(d.home), "PATH": f"{BIN}:/usr/bin:/bin", "HOME": "/tmp"}
        follower = subprocess.Popen(
            ["setpriv", f"--reuid={WATCHER}", f"--regid={pwd.getpwnam(WATCHER).pw_gid}",
             "--init-groups", str(BIN / "pilothouse"), "logs", "-f", run_id],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert follower.stdout is not None
        got: list[tuple[float, str]] = []

        def read() -> None:
            assert follower is not None and follower.stdout is not None
            for line in follower.stdout:
                got.append((time.monotonic(), line))

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got, d.log()
        (home / "config.toml").write_text("")  # no [team]: the watcher is refused from now on
        owner_call(d, "config.reload")
        removed = time.monotonic()
        time.sleep(4)
        late = [line for at, line in got if at > removed + 1.0]
        assert not late, f"{len(late)} lines after removal, e.g. {late[:3]}"
    finally:
        if follower is not None:
            follower.kill()
            follower.wait()
        d.stop()
