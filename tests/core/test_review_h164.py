"""Review h164: a teammate (or any other local user) against the daemon of a shared workstation,
with real second users, a root daemon and an ordinary-user daemon.

Found: under umask 000 the daemon made its PILOTHOUSE_HOME 0777 (os.makedirs makes the folders
above the one it is given with 0777 less the umask), and it started in, and every client
talked through, a home other users may write. Any other user then moved the runtime folder
aside (a rename needs write on the home only) and put an operator.sock of their own in its
place: the owner's `pilothouse approvals` listed that user's made-up request, and the owner's
`pilothouse run` sent them the values of the profile's `env` names (API keys) from the owner's
shell. Now no folder Pilothouse makes is writable by its group or others, whatever the umask,
the daemon refuses to start with state in (or under) a folder that another user could change,
and the client refuses to talk through such a folder.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    BIN,
    REPO,
    Daemon,
    ensure_group,
    ensure_user,
    needs_bwrap,
    remove_accounts,
)

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="creating users needs root")

ATTACKER, OWNER = "ph-h164a", "ph-h164b"  # a teammate (watcher), an ordinary daemon owner
GROUP = "ph-h164"
SECRET = "sk-h164-owners-key-7Q2"
CONFIG = (f'[team]\ngroup = "{GROUP}"\n\n[profiles.keyed]\ncommand = ["true"]\n'
          'sandbox = "bwrap"\nenv = ["PH_H164_KEY"]\n')


def _python_for_others() -> list[str] | None:
    """An interpreter and this venv's packages that a second user can run (the venv's own
    interpreter lives under /root), or None."""
    site = sysconfig.get_paths()["purelib"]
    want = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not want.exists() or not all(os.stat(d).st_mode & 0o001 for d in Path(site).parents):
        return None
    return [str(want), site]


@pytest.fixture
def users() -> Iterator[None]:
    ensure_group(GROUP)
    for user in (ATTACKER, OWNER):
        ensure_user(user, "--no-create-home", "--shell", "/usr/sbin/nologin", "-G", GROUP)
    yield
    remove_accounts((ATTACKER, OWNER), (GROUP,))


@pytest.fixture
def base() -> Iterator[Path]:
    # Not under pytest's 0700 folders: the second users must reach it, as a /srv home.
    folder = Path(tempfile.mkdtemp(prefix="ph-h164-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _as(user: str | None, argv: list[str], env: dict[str, str], **kw: object
        ) -> subprocess.CompletedProcess[str]:
    if user is not None:
        pw = pwd.getpwnam(user)
        argv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", *argv]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, **kw)


def test_a_home_made_under_umask_000_is_open_to_no_one_else(base: Path) -> None:
    home = base / "made" / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    env.update(PILOTHOUSE_HOME=str(home), PATH=f"{BIN}:/usr/bin:/bin")
    done = _as(None, ["sh", "-c", f"umask 000; exec {BIN / 'pilothouse'} ps"], env)
    try:
        assert done.returncode == 0, done.stderr
        for path in (base / "made", home, *home.iterdir(), home / "run" / "daemon.pid"):
            assert not os.stat(path).st_mode & 0o022, f"{path}: {os.stat(path).st_mode:o}"
    finally:
        _as(None, [str(BIN / "pilothouse"), "daemon", "stop"], env)


@pytest.mark.parametrize("owner", ["root", OWNER])
def test_another_user_cannot_stand_in_for_the_daemon_in_a_home_they_may_write(
        users: None, base: Path, owner: str) -> None:
    """The home is 0777, as `mkdir` under umask 000 (or the daemon itself, before) made it; the
    config lives in a folder only the owner writes, so its own check is not what stops this."""
    python = [sys.executable]
    if owner != "root":
        found = _python_for_others()
        if found is None:
            pytest.skip("no interpreter a second user can run with this venv's packages")
        python = [found[0]]
    pw = pwd.getpwnam(owner)
    home, cfg, kept_dir = base / "home", base / "cfg", base / "attacker"
    for folder in (home, cfg, kept_dir):
        folder.mkdir()
    home.chmod(0o777)
    (cfg / "config.toml").write_text(CONFIG)
    os.chown(cfg, pw.pw_uid, pw.pw_gid)
    os.chown(cfg / "config.toml", pw.pw_uid, pw.pw_gid)
    os.chown(kept_dir, pwd.getpwnam(ATTACKER).pw_uid, grp.getgrnam(GROUP).gr_gid)
    workspace = base / "ws"
    workspace.mkdir()
    os.chown(workspace, pw.pw_uid, pw.pw_gid)
    env = {"PILOTHOUSE_HOME": str(home), "PILOTHOUSE_CONFIG": str(cfg / "config.toml"),
           "PATH": "/usr/bin:/bin", "HOME": str(base),
           "PYTHONPATH": str(REPO) if owner == "root" else f"{REPO}:{_python_for_others()[1]}"}
    daemon = Daemon(home, env)
    started = subprocess.Popen(
        ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups",
         *python, "-m", "console", "daemon"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    daemon.proc = started  # type: ignore[assignment]
    fake = None
    try:
        refused = None
        try:
            refused = started.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass  # it runs: the attacker moves its runtime folder aside below
        kept = kept_dir / "requests"
        fake = subprocess.Popen(
            ["setpriv", f"--reuid={ATTACKER}", f"--regid={GROUP}", "--init-groups",
             "/usr/bin/python3", "-S", str(Path(__file__).with_name("fake_operator_sock.py")),
             str(home), str(kept)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert fake.stdout is not None and fake.stdout.readline().strip() == "ready"

        cli = [*python, "-m", "console"]
        listed = _as(owner if owner != "root" else None, [*cli, "approvals", "--json"], env)
        ran = _as(owner if owner != "root" else None,
                  [*cli, "run", "keyed", "-w", str(workspace), "--", "true"],
                  {**env, "PH_H164_KEY": SECRET})
        got = kept.read_bytes().decode() if kept.exists() else ""
        assert SECRET not in got, "the owner's key went to the other user's socket"
        assert "FAKE" not in listed.stdout, listed.stdout
        for said in (listed, ran):
            assert said.returncode != 0 and "others" in said.stderr, said
            assert "Traceback" not in said.stderr
        # The daemon would not start in such a home, and said why.
        assert refused is not None and refused != 0
        out = started.stdout.read() if started.stdout else ""
        assert f"{home} can be written by" in out, out
    finally:
        if fake is not None:
            fake.kill()
            fake.wait()
        daemon.stop()


# The teammate's two turns held open (server.TEAMMATE_AT_ONCE): `audit.verify` waits until a
# file appears, so what the teammate sends after it waits for a turn, every time.
HOLD = """
import asyncio, os
import console.daemon.ops.history as history
from console.daemon.ops.base import Op

async def held(core, peer, args, send):
    while not os.path.exists({gate!r}):
        await asyncio.sleep(0.02)
    return {{}}

history.OPS["audit.verify"] = Op(held)
"""

QUEUE = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
for i, op in enumerate(["hello", "audit.verify", "audit.verify", "daemon.stop"]):
    s.sendall((json.dumps({"v": 1, "id": i, "op": op, "args": {}}) + "\\n").encode())
f = s.makefile("rb")
for line in f:
    print(line.decode().strip(), flush=True)
"""


def test_a_teammate_taken_off_approvers_cannot_act_with_a_request_queued_before(
        users: None, home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    """The role was read once per request, before it waited for the teammate's turn: an
    approver who queued `daemon.stop` behind two slow reads, then was taken off `approvers`
    (the owner's reload), stopped the daemon once a turn came. A request is now checked against
    the [team] table in force when it runs."""
    from tests.conftest import daemon_with_sitecustomize

    gate = tmp_path / "go"
    config = f'[team]\ngroup = "{GROUP}"\napprovers = ["{ATTACKER}"]\n'
    d = daemon_with_sitecustomize(home, daemon_env, tmp_path / "hooks",
                                  HOLD.format(gate=str(gate)), config)
    d.env["PYTHONPATH"] = f"{tmp_path / 'hooks'}:{REPO}"
    for parent in (home / "run").parents:  # pytest's folders are 0700: the teammate reaches it
        if parent in (Path("/tmp"), Path("/")):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    script = tmp_path / "queue.py"
    script.write_text(QUEUE)
    script.chmod(0o644)
    d.start()
    mate = None
    try:
        mate = subprocess.Popen(
            ["setpriv", f"--reuid={ATTACKER}", f"--regid={GROUP}", "--init-groups",
             "/usr/bin/python3", "-S", str(script), str(d.sock)], stdout=subprocess.PIPE,
            text=True, env={"PATH": "/usr/bin:/bin"})
        assert mate.stdout is not None
        hello = json.loads(mate.stdout.readline())
        assert hello["result"]["role"] == "approver", hello
        (home / "config.toml").write_text(f'[team]\ngroup = "{GROUP}"\napprovers = []\n')
        reloaded = d.cli("reload")
        # The daemon's own watcher may have taken the change a moment before this reload did
        # (then this one finds no change): either way the history says it is in force.
        changes = json.loads(d.cli("history", "--kind", "policy.changed", "--json").stdout)
        assert "approvers" in json.dumps(changes), (
            reloaded.stdout, changes)
        gate.touch()
        answers = {}
        while len(answers) < 3:
            msg = json.loads(mate.stdout.readline())
            answers[msg["id"]] = msg
        assert not answers[3]["ok"] and answers[3]["error"]["code"] == "not-allowed", answers[3]
        assert d.answering_pid() == d.proc.pid  # the daemon still runs
    finally:
        gate.touch()
        if mate is not None:
            mate.kill()
            mate.wait()
        d.stop()


@needs_bwrap
@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_a_root_daemon_started_under_any_umask_runs_agents_that_leave_no_open_files(
        users: None, base: Path, umask: int) -> None:
    """The daemon's umask was its children's, and its run folders': started under umask 000,
    a run in a teammate's workspace left files and folders there that every user could change
    (0666, 0777: code the teammate runs later); under umask 077 the run folder's own folders
    were 0700 root, closed to the agent's uid, and no run started ("cannot put the network
    bridge into the sandbox"). The daemon now works under umask 022 whatever it was given."""
    pw = pwd.getpwnam(OWNER)  # the workspace's owner: a root daemon's agent runs as them
    home, workspace = base / "home", base / "ws"
    home.mkdir(mode=0o700)
    workspace.mkdir()
    os.chown(workspace, pw.pw_uid, pw.pw_gid)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    env.update(PILOTHOUSE_HOME=str(home), PILOTHOUSE_CONFIG=str(home / "config.toml"),
               PATH=f"{BIN}:/usr/bin:/bin")
    d = Daemon(home, env)
    old = os.umask(umask)
    try:
        d.start()
    finally:
        os.umask(old)
    try:
        ran = d.cli("run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c",
                    "echo hi > made.txt; mkdir sub; echo done", check=False)
        assert ran.returncode == 0 and "done" in ran.stdout, (ran.stdout, ran.stderr)
        for path in (workspace / "made.txt", workspace / "sub"):
            assert os.stat(path).st_uid == pw.pw_uid
            assert not os.stat(path).st_mode & 0o022, f"{path}: {os.stat(path).st_mode:o}"
    finally:
        d.stop()


READ_ALL = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b'{"v":1,"id":1,"op":"history","args":{"limit":1000}}\\n')
print(s.makefile("rb").readline().decode())
"""


def test_a_watcher_reads_no_webhook_or_collector_key_from_a_reloads_record(
        users: None, home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    """A reload's record (policy.changed, which every watcher may read in the history) wrote
    `[notify] command` and `[audit] otlp` whole: a webhook's secret path and a collector's
    api key, the usual places for a token, went to the team. They are fingerprinted now, as a
    profile's setenv values are: the change shows, the value does not."""
    hook, key = "T0/B0/HOOKSECRET164", "OTLPKEY164"
    config = f'[team]\ngroup = "{GROUP}"\n'
    (home / "config.toml").write_text(config)
    for parent in (home / "run").parents:  # pytest's folders are 0700: the teammate reaches it
        if parent in (Path("/tmp"), Path("/")):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    script = tmp_path / "read_all.py"
    script.write_text(READ_ALL)
    script.chmod(0o644)
    d = Daemon(home, daemon_env)
    d.start()
    try:
        (home / "config.toml").write_text(
            f'{config}[notify]\ncommand = ["curl", "-fsS", "https://hooks.example.invalid/'
            f'services/{hook}"]\n[audit]\notlp = "https://collector.example.invalid/v1/logs'
            f'?api_key={key}"\n')
        # The reload's own change or, the watcher having been first, the change the watcher
        # took ("already in force", review h182): its lines show either way.
        reloaded = d.cli("reload")
        assert "[notify] command" in reloaded.stdout, reloaded.stdout
        read = _as(ATTACKER, ["/usr/bin/python3", "-S", str(script), str(d.sock)],
                   {"PATH": "/usr/bin:/bin"})
        rows = json.loads(read.stdout)["result"]
        assert any(r["kind"] == "policy.changed" for r in rows), rows
        assert hook not in read.stdout and key not in read.stdout
        assert hook not in reloaded.stdout and key not in reloaded.stdout
    finally:
        d.stop()
