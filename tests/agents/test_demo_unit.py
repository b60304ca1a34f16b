"""The demo agent's parts without a daemon: the demo project, the patch, the gate's answers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from console.agents import demo
from console.agents.demo import PATCH, PROJECT, Demo, classify, make_demo_workspace

DEMO_FILE = Path(demo.__file__).resolve()


def unittest_rc(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "unittest", "-v"], cwd=project,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})


class AllowAll:
    """Stands in for the agent.sock client: every ask is allowed by a rule."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def ask_full(self, kind: str, subject: str, **_: object) -> dict:
        self.asked.append((kind, subject))
        return {"allow": True, "reason": "rule (test)"}


def quiet_demo(project: Path) -> tuple[Demo, AllowAll]:
    args = SimpleNamespace(speed=0, workspace=str(project), model_url=None)
    client = AllowAll()
    return Demo(args, client, RuntimeError), client  # type: ignore[arg-type]


def test_demo_workspace_fails_before_the_patch_and_passes_after(tmp_path: Path, capsys) -> None:
    project = make_demo_workspace(tmp_path / "proj", git=False)
    assert sorted(p.name for p in project.iterdir()) == sorted(PROJECT)
    before = unittest_rc(project)
    assert before.returncode != 0 and "ZeroDivisionError" in before.stderr
    agent, _ = quiet_demo(project)
    agent.patch()  # the demo's own patch step, as it runs inside the sandbox
    after = unittest_rc(project)
    assert after.returncode == 0, after.stderr
    assert "Ran 3 tests" in after.stderr  # the patch added median() and its test
    out = capsys.readouterr().out
    assert "+def median(values):" in out and "wrote stats.py, test_stats.py" in out
    agent.patch()  # twice is harmless
    assert "already patched" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_demo_workspace_is_a_git_repository(tmp_path: Path) -> None:
    project = make_demo_workspace(tmp_path / "proj")
    log = subprocess.run(["git", "log", "--oneline"], cwd=project, capture_output=True, text=True)
    assert log.returncode == 0 and "demo project" in log.stdout
    status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True,
                            text=True)
    assert status.stdout == ""  # everything committed


def test_demo_workspace_never_overwrites_other_files(tmp_path: Path) -> None:
    (tmp_path / "stats.py").write_text("my own statistics\n")
    with pytest.raises(FileExistsError, match="stats.py"):
        make_demo_workspace(tmp_path, git=False)
    assert (tmp_path / "stats.py").read_text() == "my own statistics\n"
    # Its own files, patched or not, are fine to write again.
    other = make_demo_workspace(tmp_path / "again", git=False)
    (other / "stats.py").write_text(PATCH["stats.py"])
    make_demo_workspace(other, git=False)


def test_a_foreign_workspace_gets_its_own_demo_folder(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("print('mine')\n")
    agent, _ = quiet_demo(tmp_path)
    agent.prepare_project()
    assert agent.project == tmp_path / "pilothouse-demo"
    assert (agent.project / "stats.py").is_file()
    assert not (agent.project / ".git").exists()  # no repository made inside a sandbox
    assert (tmp_path / "mine.py").read_text() == "print('mine')\n"


def gate_answer(status: int, body: str, decision: str = "") -> tuple[int, dict, bytes]:
    headers = {"x-pilothouse-decision": decision} if decision else {}
    return status, headers, body.encode()


@pytest.mark.parametrize(("answer", "kind"), [
    (gate_answer(403, "Pilothouse gate: CONNECT t.example-tracker.com:443 denied for run x.\n"
                 "Why: denied by rule **.example-tracker.com (embedded defaults:16).\n",
                 "deny; rule=**.example-tracker.com"), "denied-rule"),
    (gate_answer(403, "Pilothouse gate: ...\nWhy: asked; denied by alice.\n", "deny; rule=asked"),
     "denied-person"),
    (gate_answer(403, "Pilothouse gate: ...\nWhy: 10.0.0.1 is private.\n",
                 "deny; rule=not-routable"), "denied-address"),
    (gate_answer(403, "Pilothouse gate: ...\nWhy: no rule.\n", "deny; rule=default"),
     "denied-default"),
    (gate_answer(502, "Pilothouse gate: could not resolve pypi.org (gaierror).\n"), "unresolved"),
    (gate_answer(502, "Pilothouse gate: could not connect to pypi.org:443 (timed out).\n"),
     "unreachable"),
    (gate_answer(503, "Pilothouse gate: the decision could not be recorded.\n",
                 "deny; rule=unrecorded"), "gate-error"),
    (gate_answer(404, "<html>not here</html>"), "reached"),  # the server's own answer
])
def test_gate_answers_are_told_apart(answer: tuple[int, dict, bytes], kind: str) -> None:
    got, words = classify(*answer, host="pypi.org")
    assert got == kind
    if kind == "denied-rule":
        assert "**.example-tracker.com" in words
    if kind == "unreachable":
        assert "gate allowed, upstream unreachable (offline)" in words


def test_without_agent_socket_it_says_where_to_run(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PILOTHOUSE_AGENT_SOCK": str(tmp_path / "nothing.sock")}
    done = subprocess.run([sys.executable, str(DEMO_FILE), "--speed", "0"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "pilothouse run demo" in done.stderr and "Traceback" not in done.stderr


def old_pythons() -> list[str]:
    found = []
    for name in ("python3.8", "python3.9"):
        path = shutil.which(name)
        if path and subprocess.run([path, "-c", "pass"], capture_output=True).returncode == 0:
            found.append(path)
    return found


@pytest.mark.parametrize("python", old_pythons() or [sys.executable])
def test_runs_on_old_pythons_with_only_the_standard_library(python: str, tmp_path: Path) -> None:
    # The sandbox's python3 may be older than Pilothouse's own: the demo must not need 3.11.
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import demo; "
            "demo.make_demo_workspace(sys.argv[2], git=False); demo.parse_args(['--speed', '0'])")
    done = subprocess.run([python, "-I", "-c", code, str(DEMO_FILE.parent), str(tmp_path / "p")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "p" / "stats.py").is_file()


def test_it_asks_through_the_helper_and_says_so_when_it_is_missing(tmp_path: Path) -> None:
    from console.sandbox.base import prepare_run_dir

    _, _, where = demo.load_client()
    assert where.endswith("sandbox/inside.py")  # in the package: the helper beside it
    run_dir = tmp_path / "run"
    prepare_run_dir(run_dir)  # what every sandbox sees at /run/pilothouse/bin
    code = "import demo; c, e, where = demo.load_client(); print(type(c).__name__, where)"

    def probe(bin_dir: Path, body: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-I", "-c",
                               f"import sys; sys.path.insert(0, {str(bin_dir)!r}); {body}"],
                              capture_output=True, text=True, timeout=30,
                              env={"PILOTHOUSE_AGENT_SOCK": str(run_dir / "bin" / "demo.py")})  # exists: main() looks for the socket first

    done = probe(run_dir / "bin", code)
    assert done.stdout.split() == ["PilothouseClient", str(run_dir / "bin" / "inside.py")], done.stderr
    if Path("/run/pilothouse/bin/inside.py").exists():
        pytest.skip("this machine has a Pilothouse run folder mounted")
    (run_dir / "bin" / "inside.py").rename(tmp_path / "inside.py")
    missing = probe(run_dir / "bin", "import demo; sys.exit(demo.main(['--speed', '0']))")
    assert missing.returncode == 2 and "helper (inside.py) is not beside me" in missing.stderr


async def test_its_helper_client_asks_a_real_agent_socket(tmp_path: Path) -> None:
    import asyncio
    import tempfile

    from console.daemon.agent_socket import start_agent_server
    from console.daemon.inbox import Inbox
    from console.policy import ExecRules, GrantTable, make_policy_eval

    async def record(kind: str, data: dict) -> dict:
        return {"id": 1}

    grants = GrantTable()
    inbox = Inbox(record, timeout_s=30, grants=grants)
    rules = ExecRules(allow=["ls"], ask=["pytest"], forbid=["rm -rf /"], default="ask")
    sock_dir = Path(tempfile.mkdtemp(prefix="ph-", dir="/tmp"))  # short unix socket path
    path = sock_dir / "agent.sock"
    server = await start_agent_server(path, "r1", "demo", inbox, make_policy_eval(
        lambda _: rules, grants))
    client, _, _ = demo.load_client(str(path))
    try:
        by_rule = await asyncio.to_thread(client.ask_full, "exec", "ls -la", cwd="/workspace")
        assert by_rule["allow"] is True and 'rule "ls"' in by_rule["reason"]
        asking = asyncio.create_task(asyncio.to_thread(client.ask_full, "exec", "pytest -q",
                                                       title="run the tests"))
        while not inbox.pending("r1"):
            await asyncio.sleep(0.01)
        req = inbox.pending("r1")[0]
        assert (req.subject, req.title) == ("pytest -q", "run the tests")
        await inbox.decide(req.id, False, "alice", "once")
        answer = await asyncio.wait_for(asking, 10)
        assert answer["allow"] is False and "alice" in answer["reason"]
    finally:
        server.close()
        await server.wait_closed()
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_unknown_destination_is_a_name_under_invalid() -> None:
    """Approving the demo's unknown destination must never send traffic off the machine."""
    from urllib.parse import urlsplit

    host = urlsplit(demo.UNKNOWN_URL).hostname
    assert host == demo.unknown_host() and host.endswith(".invalid"), host
    assert demo.parse_args([]).unknown_url == demo.UNKNOWN_URL
