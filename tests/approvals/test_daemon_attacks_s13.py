"""Attack review s13b: the daemon under attack from a teammate (another real local user on
operator.sock), from an agent on agent.sock, and when the store cannot record. Each test asserts
the secure behaviour and failed on ffcd629 (/work/notes/review-s13b-before.txt).

Real daemons on temporary homes, real second users (useradd, setpriv), real sockets and SQLite.
Nothing leaves the machine.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.approvals.test_inbox_and_team_attacks import (
    SECRET,
    owner_call,
    team_daemon,
    teammates_workspace,
)
from tests.conftest import BIN, REPO, Daemon, ensure_user, needs_bwrap, read_until
from tests.core.test_team import APPROVER, GROUP, OUTSIDER, WATCHER, _ensure_users, as_user
from tests.sandbox.conftest import _python_for_others

root_only = pytest.mark.skipif(os.getuid() != 0, reason="real second users need root (setpriv)")

SHOW_UID = 'echo "uid=[$(id -u)]"'


@root_only
def test_a_teammate_cannot_run_a_command_unsandboxed_as_the_daemons_user(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    """An approver may start runs (docs/team.md), with a command of their own. A profile with
    `sandbox = "none"` runs that command as a plain host process of the daemon's user: root for
    a root daemon, the owner for a person's daemon. A teammate so runs anything as root, with
    no sandbox and no gate. Every sandboxed run of a teammate runs as the teammate
    (console/sandbox/identity.py). Secure: a teammate's unsandboxed run is refused, or runs
    as the teammate, never as the daemon's user."""
    d = team_daemon(home, daemon_env, '[profiles.bare]\ncommand = ["true"]\nsandbox = "none"\n')
    try:
        ws = teammates_workspace(workspace, APPROVER)
        out = as_user(APPROVER, d, "run", "bare", "-w", str(ws), "--wait", "--", "sh", "-c",
                      SHOW_UID)
        assert f"uid=[{os.getuid()}]" not in out.stdout, (out.stdout, out.stderr)
        if out.returncode == 0:
            assert f"uid=[{pwd.getpwnam(APPROVER).pw_uid}]" in out.stdout, out.stdout
    finally:
        d.stop()


# --- a person's (non-root) daemon with teammates -------------------------------------------------

OWNER, MATE = "phs13owner", "phs13mate"  # the daemon's owner; a teammate listed as an approver
MATE_HOME = Path("/tmp/ph-s13-mate-home")


def _ensure_person_team() -> None:
    _ensure_users()  # the group
    for user, home in ((OWNER, None), (MATE, MATE_HOME)):
        ensure_user(user, "-M", "-G", GROUP, "--shell", "/usr/sbin/nologin",
                    *(["-d", str(home)] if home is not None else []))
    os.makedirs("/etc/claude-code", exist_ok=True)  # a person's daemon needs it (doctor says so)


class OwnersDaemon(Daemon):
    """The Daemon fixture's daemon, run as the ordinary user OWNER (setpriv), with a python3
    that user can run also from inside a sandbox's user namespace (the bridge's helper)."""

    def start(self, timeout: float = 20.0) -> None:
        real = subprocess.Popen
        pw = pwd.getpwnam(OWNER)
        found = _python_for_others()
        if found is None:
            pytest.skip("no python3 and site-packages that another user can run and read")
        python, site = found

        def as_owner(cmd: list[str], *a: Any, **kw: Any) -> Any:
            kw["env"] = {**kw["env"], "PYTHONPATH": f"{REPO}:{site}"}
            cmd = ["setpriv", f"--reuid={OWNER}", f"--regid={pw.pw_gid}", "--init-groups",
                   python, *cmd[1:]]
            return real(cmd, *a, **kw)

        subprocess.Popen = as_owner  # type: ignore[assignment,misc]
        try:
            super().start(timeout)
        finally:
            subprocess.Popen = real  # type: ignore[misc]


def persons_team_daemon(tmp: Path, profiles: str) -> OwnersDaemon:
    """OWNER's daemon in team mode (MATE an approver), its home and config OWNER's."""
    _ensure_person_team()
    owner = pwd.getpwnam(OWNER)
    home = tmp / "ph-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'[team]\ngroup = "{GROUP}"\napprovers = ["{MATE}"]\n{profiles}')
    for p in (home, home / "config.toml"):
        os.chown(p, owner.pw_uid, owner.pw_gid)
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp / "owner-home"),
           "PILOTHOUSE_HOME": str(home), "PILOTHOUSE_CONFIG": str(home / "config.toml")}
    d = OwnersDaemon(home, env)
    d.start()
    return d


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder both users reach (pytest's own are 0700)."""
    d = Path(tempfile.mkdtemp(prefix="ph-s13b-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@root_only
@needs_bwrap
def test_a_teammates_carry_cannot_read_the_daemon_owners_files(shared_tmp: Path) -> None:
    """A profile carries `~/.config/pip/pip.conf`; `~` is the home of whoever starts the run
    and "the file must be one they can read" (docs/agents.md). A person's daemon reads it as
    itself, the owner (run_prep.carry: the agent's identity, which is the daemon's user). A
    teammate makes that file in their own home a link to the owner's private file, starts the
    run and prints the copy: the owner's secret, which the teammate could never read, is in
    the run's output, for every watcher too. (The key-places check looks only under the
    teammate's home.) Secure: nothing the teammate cannot read is carried into their run."""
    d = persons_team_daemon(shared_tmp, '[profiles.cfg]\ncommand = ["true"]\n'
                            'carry = ["~/.config/pip/pip.conf"]\n'
                            '[profiles.cfg.network]\ndefault = "deny"\n')
    owner, mate = pwd.getpwnam(OWNER), pwd.getpwnam(MATE)
    try:
        private = shared_tmp / "owner-home"
        private.mkdir(mode=0o700)
        (private / "token").write_text(f"{SECRET}\n")
        for p in (private, private / "token"):
            os.chown(p, owner.pw_uid, owner.pw_gid)
        os.chmod(private / "token", 0o600)
        shutil.rmtree(MATE_HOME, ignore_errors=True)
        (MATE_HOME / ".config" / "pip").mkdir(parents=True)
        (MATE_HOME / ".config" / "pip" / "pip.conf").symlink_to(private / "token")
        for root, dirs, files in os.walk(MATE_HOME):
            for n in [root, *(os.path.join(root, x) for x in dirs + files)]:
                os.lchown(n, mate.pw_uid, mate.pw_gid)
        os.chmod(MATE_HOME, 0o711)
        ws = shared_tmp / "mate-ws"
        ws.mkdir()
        os.chown(ws, mate.pw_uid, grp.getgrnam(GROUP).gr_gid)
        os.chmod(ws, 0o770)
        mine = as_user(MATE, d, "ps")  # the teammate cannot read the file itself
        assert mine.returncode == 0, (mine.stderr, d.log())
        assert subprocess.run(["setpriv", f"--reuid={MATE}", f"--regid={mate.pw_gid}",
                               "--init-groups", "cat", str(private / "token")],
                              capture_output=True).returncode != 0
        out = as_user(MATE, d, "run", "cfg", "-w", str(ws), "--wait", "--", "sh", "-c",
                      "cat /home/agent/.config/pip/pip.conf; echo done")
        assert "done" in out.stdout or out.returncode != 0, (out.stdout, out.stderr, d.log())
        assert SECRET not in out.stdout, out.stdout
    finally:
        d.stop()
        shutil.rmtree(MATE_HOME, ignore_errors=True)


# --- one teammate connection, any number of requests ---------------------------------------------

PIPELINE = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
n = int(sys.argv[2])
line = json.dumps({"v": 1, "id": 0, "op": "subscribe", "args": {"topics": ["run"]}}) + "\n"
s.sendall(line.encode() * n)
s.settimeout(5)
buf, subscribed, busy = b"", 0, 0
try:
    while subscribed + busy < n:
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for raw in lines:
            msg = json.loads(raw)
            if msg.get("event", {}).get("kind") == "subscribed":
                subscribed += 1
            elif (msg.get("error") or {}).get("code") in ("busy", "too-many-connections"):
                busy += 1
except socket.timeout:
    pass
print(json.dumps({"subscribed": subscribed, "busy": busy}), flush=True)
time.sleep(float(sys.argv[3]))
"""


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@root_only
def test_one_watcher_connection_cannot_open_requests_without_bound(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    """A teammate may hold 16 connections (docs/team.md), but each connection runs every
    request it sends at once, without a bound (server._session: a task per line; agent.sock
    has MAX_IN_FLIGHT). A watcher sends 20,000 `subscribe` lines on one connection: 20,000
    live bus subscriptions, each with a 10,000-event queue that a reader who never reads
    fills, and every event the daemon publishes is offered to each of them, on the loop
    every run and every console shares. Secure: past a bound per connection, a request is
    answered `busy` (as agent.sock does)."""
    d = team_daemon(home, daemon_env)
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    os.chmod(tmp_path, 0o755)
    pw = pwd.getpwnam(WATCHER)
    assert d.proc is not None
    before = _rss_mb(d.proc.pid)
    flood = subprocess.Popen(
        ["setpriv", f"--reuid={WATCHER}", f"--regid={pw.pw_gid}", "--init-groups",
         "/usr/bin/python3", "-S", str(script), str(d.sock), "20000", "3"],
        stdout=subprocess.PIPE, text=True, env={"PATH": "/usr/bin:/bin"})
    try:
        assert flood.stdout is not None
        got = json.loads(flood.stdout.readline())
        grown = _rss_mb(d.proc.pid) - before
        assert got["subscribed"] <= 1024, (got, f"daemon RSS grew {grown:.0f} MB")
        assert got["busy"] > 0, got
    finally:
        flood.kill()
        flood.wait()
        d.stop()


DENIED = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb", buffering=0)
n, batch, codes = int(sys.argv[2]), 100, {}
for start in range(0, n, batch):
    f.write(b"".join((json.dumps({"v": 1, "id": i, "op": "grant.revoke", "args": {"id": "g"}})
                      + "\n").encode() for i in range(start, start + batch)))
    for _ in range(batch):
        code = (json.loads(f.readline()).get("error") or {}).get("code")
        codes[code] = codes.get(code, 0) + 1
print(json.dumps(codes), flush=True)
"""



def counted_rows(d: Daemon, kind: str, field: str, value: Any, made: int
                 ) -> list[dict[str, Any]]:
    """The rows of `kind` whose data names this user (its own rows and the summaries of its
    repeats), and the daemon's rows of events past its rate (store.throttled, no run: this
    test's user is the only one flooding). A window closes at the first tick past a second
    and its summary lands then: read until they account for the `made` attempts (or far past
    that tick), not after a fixed 2.5 s a loaded machine's tick may come after."""
    def read() -> list[dict[str, Any]]:
        rows = json.loads(d.cli("history", "--limit", "20000", "--json").stdout)
        return [r for r in rows if (r["kind"] == kind and (r["data"] or {}).get(field) == value)
                or (r["kind"] == "store.throttled" and r["run_id"] is None)]
    return read_until(read, lambda rows: attempts(rows) >= made, timeout=30, every=0.25)


def attempts(rows: list[dict[str, Any]]) -> int:
    """Attempts the rows account for: one per row of its own, `count` per summary."""
    return sum(r["data"]["count"] if r["data"].get("aggregated") or r["kind"] ==
               "store.throttled" else 1 for r in rows)

@root_only
def test_a_watchers_refused_attempts_do_not_flood_the_history(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    """Every deciding op a watcher tries is refused and recorded (`operator.denied_op`), each
    a security row committed, chained and witnessed on its own, with no bound. An agent's
    refused asks are folded past `events_per_second` (floods.py); a watcher's attempts are
    not: 2,000 tries are 2,000 rows, at the rate the disk takes them (a day of it fills a
    small disk, and the store then refuses every action until a restart). Secure: the first
    attempts are rows of their own, the repeats one summary with a count."""
    d = team_daemon(home, daemon_env)
    script = tmp_path / "denied.py"
    script.write_text(DENIED)
    os.chmod(tmp_path, 0o755)
    pw = pwd.getpwnam(WATCHER)
    try:
        done = subprocess.run(
            ["setpriv", f"--reuid={WATCHER}", f"--regid={pw.pw_gid}", "--init-groups",
             "/usr/bin/python3", "-S", str(script), str(d.sock), "2000"],
            capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
        assert json.loads(done.stdout) == {"not-allowed": 2000}, (done.stdout, done.stderr)
        mine = counted_rows(d, "operator.denied_op", "user", WATCHER, 2000)
        assert len(mine) <= 200, f"{len(mine)} rows for 2000 refused attempts"
        assert attempts(mine) == 2000, mine  # every attempt is still counted
    finally:
        d.stop()


REFUSED = r"""
import json, socket, sys
codes = {}
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    code = (json.loads(s.makefile("rb").readline()).get("error") or {}).get("code")
    codes[code] = codes.get(code, 0) + 1
    s.close()
print(json.dumps(codes), flush=True)
"""


@root_only
def test_a_strangers_refused_connections_do_not_flood_the_history(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    """A user who is not in the [team] group but whose process still holds its gid (removed
    from the group with a session open, or given it by setpriv) reaches operator.sock and is
    refused; each refusal was an `operator.refused` row committed on its own, so a reconnect
    loop filled the history as the watcher's attempts did. Secure: one row a second for that
    user, the rest one summary with a count, and every refusal still counted."""
    d = team_daemon(home, daemon_env)
    script = tmp_path / "refused.py"
    script.write_text(REFUSED)
    os.chmod(tmp_path, 0o755)
    pw = pwd.getpwnam(OUTSIDER)
    try:
        done = subprocess.run(
            ["setpriv", f"--reuid={OUTSIDER}", f"--regid={pw.pw_gid}",
             f"--groups={grp.getgrnam(GROUP).gr_gid}", "/usr/bin/python3", "-S", str(script),
             str(d.sock), "300"],
            capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
        assert json.loads(done.stdout) == {"not-allowed": 300}, (done.stdout, done.stderr)
        mine = counted_rows(d, "operator.refused", "uid", pw.pw_uid, 300)
        assert len(mine) <= 60, f"{len(mine)} rows for 300 refused connections"
        assert attempts(mine) == 300, mine  # every refusal is still counted
    finally:
        d.stop()


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_a_huge_tail_does_not_load_a_long_runs_output_whole(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    """`logs --tail N` read the last N lines in one query and held them all before sending
    the first page; a watcher (logs is a watching op) asking a long run's log with
    `--tail 1000000000` made the daemon hold every line of it at once (+150 MB for 300,000
    lines). Secure: a tail is paged like the whole log, from its first line."""
    (home / "config.toml").write_text(
        '[profiles.long]\ncommand = ["seq", "1", "300000"]\nsandbox = "none"\n')
    d = Daemon(home, daemon_env)
    d.start()
    try:
        started = json.loads(d.cli("run", "long", "-w", str(workspace), "--json").stdout)
        run_id = started["id"]
        d.cli("logs", run_id, "--follow")  # until the run has ended
        assert d.proc is not None
        whole = d.cli("logs", run_id).stdout.splitlines()  # paged already; a burst this
        assert len(whole) > 100_000, len(whole)  # fast may pass the writer's queue (dropped)
        assert d.cli("logs", run_id, "--tail", "3").stdout.splitlines() == whole[-3:]
        before = _peak_mb(d.proc.pid)
        out = d.cli("logs", run_id, "--tail", "1000000000")
        grown = _peak_mb(d.proc.pid) - before
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == whole
        assert grown < 25, f"the daemon's peak memory grew {grown:.0f} MB for one tail"
        bad = d.cli("logs", run_id, "--tail", "-5", check=False)  # refused as read (s27)
        assert bad.returncode == 2 and "smaller than the minimum 0" in bad.stderr, bad
        from console.client.sync import ClientError

        with pytest.raises(ClientError, match="tail must be"):  # and by the daemon itself
            owner_call(d, "logs", run=run_id, tail=-5)
    finally:
        d.stop()
