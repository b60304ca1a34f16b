"""A requester's secrets in an agent another person controls (review s32, helper 116).

A root daemon runs a root-asked run in a workspace a person owns as that person (identity.py:
the workspace owner), so what the agent writes is theirs. A profile's `env` names were still
filled from root's shell (and, for root's runs, from the daemon's own environment): root ran
`PH_SECRET=... pilothouse run sec -w /home/alice/ws -- sleep 25`, and alice, from her own shell
outside the sandbox, read root's key in `/proc/<agent pid>/environ` (bubblewrap and Docker).
Such values now reach the sandbox only when the agent runs as the one who asked, or as the root
daemon's own `pilothouse-agent` account (no person controls it); otherwise the run starts
without them and its notes name them, say why, and what to do. A person's own run is unchanged.
The same holds for a person's (non-root) daemon, which runs every agent as that person: a
teammate's (or root's) shell values no longer go into it.

Before the fix 4 tests failed: alice read root's key and the daemon's under both backends, and
the two checks of the new rule (run_env, env_reach) had nothing to import; the own-run test passed.

A real root daemon, a real second user (the team tests' `phapprover`, who owns the workspace and
reads /proc from her own process), real sandboxes of both backends. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import BIN, Daemon, needs_bwrap
from tests.core.test_team import APPROVER, GROUP, _ensure_users, _open_parents

root_only = pytest.mark.skipif(os.getuid() != 0, reason="a root daemon and a real second user "
                                                       "need root")

CALLER_SECRET = "root-api-key-XYZ-s32"  # in root's shell when it runs `pilothouse run`
DAEMON_SECRET = "daemon-api-key-Q7-s32"  # in the root daemon's own environment
ALICES_OWN = "alices-own-key-s32"  # in alice's shell when she starts her own run

# Reads, as the user it runs as, the environment of every process it may read (as alice's
# shell would: `cat /proc/*/environ`); prints one JSON object {pid: [VAR=value, ...]}.
READ_ENVIRONS = r"""
import json, os, sys
found = {}
for pid in os.listdir("/proc"):
    if not pid.isdigit() or pid == str(os.getpid()):
        continue
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        continue
    if data:
        found[pid] = [v.decode(errors="replace") for v in data.split(b"\0") if v]
print(json.dumps(found))
"""


def _profile(backend: str) -> str:
    where = 'sandbox = "bwrap"\n'
    if backend == "docker":
        from tests.images.build import busybox_image, docker_client_or_skip

        where = f'sandbox = "docker"\nimage = "{busybox_image(docker_client_or_skip())}"\n'
    return ('[profiles.sec]\ncommand = ["sleep", "25"]\n' + where +
            'env = ["PH_SECRET", "PH_DAEMON_SECRET"]\n[profiles.sec.network]\ndefault = "deny"\n')


def _daemon(home: Path, daemon_env: dict[str, str], backend: str) -> Daemon:
    _ensure_users()  # phapprover (alice here), in the team group: she may start runs of her own
    (home / "config.toml").write_text(f'[team]\ngroup = "{GROUP}"\napprovers = ["{APPROVER}"]\n'
                                      + _profile(backend))
    _open_parents(home / "run")
    d = Daemon(home, {**daemon_env, "PH_DAEMON_SECRET": DAEMON_SECRET})
    d.start()
    return d


def _alices_workspace(workspace: Path) -> Path:
    _open_parents(workspace)
    pw = pwd.getpwnam(APPROVER)
    for path in (workspace, *workspace.iterdir()):
        os.lchown(path, pw.pw_uid, pw.pw_gid)
    return workspace


def _as_alice(argv: list[str], env: dict[str, str],
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    pw = pwd.getpwnam(APPROVER)
    return subprocess.run(
        ["setpriv", f"--reuid={APPROVER}", f"--regid={pw.pw_gid}", "--init-groups", *argv],
        env=env, capture_output=True, text=True, timeout=timeout, cwd="/")  # fmt: skip


def _alices_view_of_the_agent(run_id: str, timeout: float = 60) -> list[str]:
    """The environment alice reads, from her own process on the host, of the run's agent (the
    process whose environment names the run): waits for it to start."""
    deadline = time.monotonic() + timeout
    seen: dict[str, list[str]] = {}
    while time.monotonic() < deadline:
        out = _as_alice(["/usr/bin/python3", "-S", "-c", READ_ENVIRONS], {"PATH": "/usr/bin:/bin"})
        assert out.returncode == 0, out.stderr
        seen = json.loads(out.stdout)
        agent = [v for env in seen.values() if f"PILOTHOUSE_RUN_ID={run_id}" in env for v in env]
        if agent:
            return agent + [v for env in seen.values() for v in env]  # the agent's first, then all
        time.sleep(0.3)
    raise AssertionError(f"alice found no process of run {run_id}: {seen}")


def _run_notes(d: Daemon, run_id: str) -> list[str]:
    run = json.loads(d.cli("ps", "--all", "--json").stdout)
    row = next(r for r in run if r["id"] == run_id)
    return row.get("notes") or (row.get("info") or {}).get("notes") or []


@root_only
@needs_bwrap
@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_roots_secrets_do_not_reach_an_agent_running_as_the_workspace_owner(
        backend: str, home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    d = _daemon(home, daemon_env, backend)
    run_id = ""
    try:
        ws = _alices_workspace(workspace)
        started = subprocess.run(
            [str(BIN / "pilothouse"), "run", "sec", "-w", str(ws), "--", "sleep", "25"],
            env={**daemon_env, "PH_SECRET": CALLER_SECRET}, capture_output=True, text=True,
            timeout=120)  # fmt: skip
        assert started.returncode == 0, (started.stdout, started.stderr, d.log())
        run_id = started.stdout.strip().splitlines()[-1]
        environ = _alices_view_of_the_agent(run_id)
        alice = pwd.getpwnam(APPROVER).pw_uid
        assert CALLER_SECRET not in "\n".join(environ), \
            f"alice (uid {alice}) read root's PH_SECRET in the agent's environ: {environ[:40]}"
        assert DAEMON_SECRET not in "\n".join(environ), \
            f"alice (uid {alice}) read the daemon's PH_DAEMON_SECRET in the agent's environ"
        notes = _run_notes(d, run_id)
        said = [n for n in notes if "PH_SECRET" in n and "PH_DAEMON_SECRET" in n]
        assert said and "withheld" in said[0] and APPROVER in said[0], notes
        assert f"run it as {APPROVER}" in said[0], said  # what to do
        logs = d.cli("logs", run_id).stdout
        assert "withheld" in logs and CALLER_SECRET not in logs, logs
    finally:
        if run_id:
            d.cli("stop", "--kill", run_id, check=False)
        d.stop()


@root_only
@needs_bwrap
@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_a_persons_own_run_and_roots_own_run_still_get_their_variables(
        backend: str, home: Path, daemon_env: dict[str, str], workspace: Path,
        tmp_path: Path) -> None:
    d = _daemon(home, daemon_env, backend)
    show = ["--wait", "--", "sh", "-c",
            'echo "key=[${PH_SECRET:-unset}] d=[${PH_DAEMON_SECRET:-unset}]"']
    try:
        # Alice's run in her workspace: the agent is alice; her shell's value goes in (the
        # daemon's own values never go to a teammate's run, as before).
        ws = _alices_workspace(workspace)
        env = {"PILOTHOUSE_HOME": str(home), "PATH": f"{BIN}:/usr/bin:/bin", "HOME": "/tmp",
               "PH_SECRET": ALICES_OWN, **({"PYTHONPATH": os.environ["PYTHONPATH"]}
                                          if "PYTHONPATH" in os.environ else {})}
        out = _as_alice([str(BIN / "pilothouse"), "run", "sec", "-w", str(ws), *show], env, 120)
        assert f"key=[{ALICES_OWN}] d=[unset]" in out.stdout, (out.stdout, out.stderr, d.log())
        assert "withheld" not in out.stdout + out.stderr, out
        # Root's run in a root-owned workspace: the agent is the dedicated pilothouse-agent,
        # which no person controls; root's shell and the daemon's values both go in.
        own = tmp_path / "roots-ws"
        own.mkdir()
        out = subprocess.run([str(BIN / "pilothouse"), "run", "sec", "-w", str(own), *show],
                             env={**daemon_env, "PH_SECRET": CALLER_SECRET}, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
        assert f"key=[{CALLER_SECRET}] d=[{DAEMON_SECRET}]" in out.stdout, (out.stdout, out.stderr)
        assert "withheld" not in out.stdout + out.stderr, out
    finally:
        d.stop()


def test_run_env_withholds_what_may_not_reach_the_agent_and_says_which(monkeypatch) -> None:
    from console.config.schema import Profile
    from console.daemon.run_prep import EnvReach, run_env

    monkeypatch.setenv("PH_DAEMON_SECRET", DAEMON_SECRET)
    profile = Profile(name="sec", command=["true"], source="test", file="test",
                      env=["PH_SECRET", "PH_DAEMON_SECRET", "PH_NOWHERE"])
    caller = {"PH_SECRET": CALLER_SECRET}
    notes: list[str] = []
    env = run_env("r1", profile, caller, notes)  # the asker's own agent: everything goes in
    assert (env["PH_SECRET"], env["PH_DAEMON_SECRET"]) == (CALLER_SECRET, DAEMON_SECRET)
    assert len(notes) == 1 and "PH_NOWHERE" in notes[0], notes
    notes = []
    reach = EnvReach(True, False, False, "alice (uid 1003, the workspace owner)", "run it as alice")
    env = run_env("r1", profile, caller, notes, reach)
    assert "PH_SECRET" not in env and "PH_DAEMON_SECRET" not in env, env
    assert CALLER_SECRET not in "".join(notes) and DAEMON_SECRET not in "".join(notes), notes
    (withheld,) = [n for n in notes if "withheld" in n]
    assert withheld.startswith("env PH_SECRET, PH_DAEMON_SECRET: withheld: the agent runs as "
                               "alice (uid 1003, the workspace owner)"), withheld
    assert withheld.endswith("to pass them, run it as alice"), withheld
    notes = []  # a person's daemon asked by root: the daemon's own values are its user's
    env = run_env("r1", profile, caller, notes, EnvReach(True, False, True, "p", "x"))
    assert "PH_SECRET" not in env and env["PH_DAEMON_SECRET"] == DAEMON_SECRET, env


REACH = r"""
import json, os, sys
from console.daemon.run_prep import env_reach
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
out = {}
for who, asker in (("owner", (os.getuid(), os.getgid())), ("root", (0, 0)),
                   ("teammate", (int(sys.argv[2]), int(sys.argv[2])))):
    r = env_reach("bwrap", fd, asker)
    out[who] = [r.callers, r.daemons, r.advice]
print(json.dumps(out))
"""


@root_only
def test_a_persons_daemon_gives_a_teammates_or_roots_values_to_no_agent() -> None:
    """A person's (non-root) daemon runs every agent as that person: values from a teammate's
    or root's shell would be the person's to read; the daemon's own are its user's."""
    from tests.sandbox.conftest import _ensure_daemon_user, _python_for_others

    person, python = _ensure_daemon_user(), _python_for_others()
    if python is None:
        pytest.skip("no python3 and site-packages that another user can run and read")
    _ensure_users()
    repo = str(Path(__file__).resolve().parents[2])
    out = subprocess.run(
        ["setpriv", f"--reuid={person.pw_uid}", f"--regid={person.pw_gid}", "--clear-groups",
         python[0], "-c", REACH, "/", str(pwd.getpwnam(APPROVER).pw_uid)],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{repo}:{python[1]}"}, cwd="/",
        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    reach = json.loads(out.stdout)
    assert reach["owner"][:2] == [True, True], reach  # the person's own run: unchanged
    assert reach["root"][:2] == [False, True], reach  # root's shell: no; the daemon's: its own
    assert reach["teammate"][:2] == [False, False], reach
    assert "on a daemon of your own" in reach["teammate"][2], reach
