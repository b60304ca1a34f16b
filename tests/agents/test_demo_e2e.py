"""The demo agent end to end: a real daemon, a real bubblewrap sandbox, the real gate, and a
person (a thread driving the CLI) who approves or denies what the agent asks."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.agents import demo
from console.agents.demo import make_demo_workspace
from tests.conftest import Daemon, needs_bwrap

from .model_server import DEMO_MODEL as MODEL
from .model_server import DEMO_USAGE as USAGE
from .model_server import DEMO_WORDS as WORDS
from .model_server import ModelServer, Words
from .real_harness import Person

pytestmark = needs_bwrap
ME = pwd.getpwuid(os.geteuid()).pw_name  # the decider the daemon records (SO_PEERCRED)
UNKNOWN_HOST = demo.unknown_host()  # a name under .invalid: approving it sends nothing anywhere
# The demo's allowed host is pypi.org; tests use a stand-in under .invalid so that nothing leaves
# the machine (allowed by the test config where the test needs it, asked and denied elsewhere).
ALLOWED_HOST = "allowed.pilothouse-demo.invalid"


def demo_command(daemon: Daemon, ws: Path) -> list[str]:
    """`ph-demo-agent` when the run folder provides it; else the same file run from the
    workspace (python3 /workspace/.ph-demo/demo.py), which needs no wiring at all."""
    probe = daemon.cli("run", "shell", "-w", str(ws), "--wait", "--", "sh", "-c",
                       "command -v ph-demo-agent", check=False)
    if probe.returncode == 0:
        return ["ph-demo-agent"]
    (ws / ".ph-demo").mkdir(exist_ok=True)
    for name in ("demo.py", "demo_project.py", "../sandbox/inside.py"):
        source = Path(demo.__file__).parent / name
        shutil.copyfile(source, ws / ".ph-demo" / source.name)
    return ["python3", "/workspace/.ph-demo/demo.py"]


def run_demo(daemon: Daemon, ws: Path, exec_allow: bool, *extra: str,
             net_allow: tuple[str, ...] = ()) -> tuple[str, str, Person]:
    command = demo_command(daemon, ws)
    person = Person(daemon, exec_allow, net_allow)
    person.start()
    try:
        done = daemon.cli("run", "demo", "-w", str(ws), "--wait", "--", *command, "--speed", "0",
                          "--allowed-url", f"https://{ALLOWED_HOST}/", *extra, check=False, timeout=240)
    finally:
        person.done.set()
        person.join(10)
    assert not person.errors, person.errors
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{daemon.log()}"
    run_id = re.search(r"\[pilothouse\] run (\S+) ", done.stderr)
    assert run_id, done.stderr
    return done.stdout, run_id.group(1), person


def history(daemon: Daemon, run_id: str) -> list[dict]:
    out = daemon.cli("history", "--json", "--run", run_id, "--limit", "500").stdout
    return json.loads(out)


def events(hist: list[dict], event_kind: str, **data: object) -> list[dict]:
    """Events of one kind whose data has these values."""
    return [e for e in hist if e["kind"] == event_kind
            and all((e.get("data") or {}).get(k) == v for k, v in data.items())]


def outcome(out: str, host: str) -> str:
    """The outcome kind the demo printed for a GET to host."""
    m = re.search(rf"GET https?://{re.escape(host)}\S*.*\n\s+outcome: (\S+) - (.*)", out)
    assert m, f"no outcome for {host} in:\n{out}"
    return m.group(1) + " - " + m.group(2)


@pytest.fixture(params=["bwrap", "docker"])
def demo_backend(request: pytest.FixtureRequest, home: Path, workspace: Path) -> str:
    """Run the demo profile under each backend. Docker gets the locally built python image
    (busybox + python3); the workspace is handed to a non-root uid, which the container runs
    as (a root daemon never runs containers as root)."""
    if request.param == "docker":
        from tests.images.build import docker_client_or_skip, python_image

        image = python_image(docker_client_or_skip())
        with open(home / "config.toml", "a") as f:
            f.write(f'\n[profiles.demo]\nsandbox = "docker"\nimage = "{image}"\n')
    return request.param


def hand_over(ws: Path, backend: str) -> None:
    if backend == "docker" and os.geteuid() == 0:
        for path in [ws, *ws.rglob("*")]:
            os.lchown(path, 1000, 1000)


@pytest.fixture
def model_server(home: Path) -> Iterator[ModelServer]:
    """A model server on the host, metered and allowed for the demo profile. Written before
    the daemon starts (request this fixture before `daemon`)."""
    with ModelServer(Words(words=WORDS, usage=USAGE), model=MODEL) as fake:
        (home / "config.toml").write_text(
            f'[gate]\ninference = ["127.0.0.1:{fake.port}"]\n\n'
            f'[profiles.demo.network]\nallow = ["127.0.0.1:{fake.port}", "{ALLOWED_HOST}"]\n')
        yield fake


def test_demo_approved_tests_denied_network_and_a_metered_model(
        model_server: ModelServer, demo_backend: str, daemon: Daemon, workspace: Path) -> None:
    make_demo_workspace(workspace)
    hand_over(workspace, demo_backend)
    out, run_id, person = run_demo(daemon, workspace, True,
                                   "--model-url", f"http://127.0.0.1:{model_server.port}/v1")

    # What the agent printed, step by step.
    assert "ph-demo-agent: done" in out
    assert re.search(r"approved: rule \"ls\" \(allow\)", out)
    before, after = out.split("== step 4")
    assert "tests: failed" in before and "ZeroDivisionError" in before
    assert "tests: passed" in after
    tracker = outcome(out, "telemetry.example-tracker.com")
    assert tracker.startswith("denied-rule - 403") and "**.example-tracker.com" in tracker
    assert outcome(out, UNKNOWN_HOST).startswith("denied-person")
    assert outcome(out, ALLOWED_HOST).startswith("unresolved - 502")  # allowed, and .invalid
    assert "+def median(values):" in out
    assert "".join(WORDS).strip() in out  # the streamed completion, printed as it came
    assert f"usage: {USAGE['prompt_tokens']} prompt + {USAGE['completion_tokens']}" in out

    # The person was asked twice to run the tests and once about the unknown name, nothing else.
    assert sorted(person.decided) == [("exec", "pytest -q", True), ("exec", "pytest -q", True),
                                      ("network", f"{UNKNOWN_HOST}:443", False)]

    # And the history says who decided what, and by which rule.
    hist = history(daemon, run_id)
    assert events(hist, "run.started")[0]["data"]["backend"] == demo_backend
    assert len(events(hist, "approval.requested", kind="exec", subject="pytest -q")) == 2
    decided = events(hist, "approval.decided", kind="exec", subject="pytest -q", allow=True)
    assert len(decided) == 2 and all(e["actor"] == ME for e in decided)
    asked = events(hist, "approval.decided", kind="network", subject=f"{UNKNOWN_HOST}:443", allow=False)
    assert len(asked) == 1 and asked[0]["actor"] == ME
    by_rule = events(hist, "net.decision", host="telemetry.example-tracker.com", action="deny")
    assert by_rule and by_rule[0]["data"]["rule"] == "**.example-tracker.com"
    person_denied = events(hist, "net.decision", host=UNKNOWN_HOST, action="deny", asked=True)
    assert person_denied and person_denied[0]["data"]["provenance"]["person"] == ME
    tokens = events(hist, "tokens", completion_tokens=USAGE["completion_tokens"])
    assert tokens and tokens[0]["data"]["model"] == MODEL

    # The model server got a streamed request with usage asked for; the patch is on disk.
    posts = model_server.posts()
    assert posts and posts[0].body["stream"] is True
    assert posts[0].body["stream_options"] == {"include_usage": True}
    check = subprocess.run([sys.executable, "-m", "unittest"], cwd=workspace,
                           capture_output=True, text=True, env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert check.returncode == 0, check.stderr


def test_demo_goes_on_when_the_tests_are_denied(demo_backend: str, daemon: Daemon,
                                                workspace: Path) -> None:
    make_demo_workspace(workspace)
    hand_over(workspace, demo_backend)
    out, run_id, person = run_demo(daemon, workspace, False)

    assert out.count("tests: not run (denied: decided by") == 2
    assert "tests: passed" not in out and "tests: failed" not in out
    assert "wrote stats.py, test_stats.py" in out  # the rest of the script still ran
    assert "skipped: no --model-url" in out and "ph-demo-agent: done" in out
    assert ("exec", "pytest -q", False) in person.decided

    hist = history(daemon, run_id)
    assert events(hist, "run.started")[0]["data"]["backend"] == demo_backend
    denied = events(hist, "approval.decided", kind="exec", subject="pytest -q", allow=False)
    assert len(denied) == 2 and all(e["actor"] == ME for e in denied)
    assert events(hist, "run.ended", exit_code=0)


def test_demo_unknown_name_is_asked_and_answered_502_after_an_allow(daemon: Daemon, workspace: Path) -> None:
    """Approving the unknown destination sends nothing off the machine: it is a name under
    .invalid, which no resolver answers, so the gate says 502 (could not resolve)."""
    assert UNKNOWN_HOST.endswith(".invalid")
    make_demo_workspace(workspace)
    out, run_id, person = run_demo(daemon, workspace, False, net_allow=(f"{UNKNOWN_HOST}:443",))
    assert ("network", f"{UNKNOWN_HOST}:443", True) in person.decided
    assert outcome(out, UNKNOWN_HOST).startswith("unresolved - 502")
    allowed = events(history(daemon, run_id), "net.decision", host=UNKNOWN_HOST, action="allow", asked=True)
    assert allowed and allowed[0]["data"]["provenance"]["person"] == ME
