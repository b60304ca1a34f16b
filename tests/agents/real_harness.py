"""What the real agents' end-to-end tests share: finding the installed binaries, their
fixtures (binary, backend, model server, daemon environment; made once by `agent_fixtures`), a
person who answers the inbox, and reading a run's history.

The binaries are installed by `make agents-install` (root, from npm and PyPI, under /usr/local
so that the sandbox's read-only /usr holds them). A test skips only when a binary is missing,
and says how to install it; `make test` installs them first.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon

from .model_server import FINAL_TEXT, ModelServer, Script

ME = pwd.getpwuid(os.geteuid()).pw_name  # the decider the daemon records (SO_PEERCRED)
INSTALL_HINT = "run `make agents-install` as root (npm and PyPI must be reachable)"
TASK = "Write the word hi into proof.txt"


def agent_binary(name: str) -> str:
    """The agent's binary under /usr (the only place the sandbox sees it), else skip."""
    path = shutil.which(name, path="/usr/local/bin:/usr/bin")
    if path is None:
        pytest.skip(f"{name} is not installed under /usr/local/bin or /usr/bin; {INSTALL_HINT}")
    return path


def version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


@dataclass(frozen=True)
class RealAgent:
    """What sets one real agent's tests apart from another's."""

    name: str  # the binary and its built-in profile: claude, codex, aider
    label: str  # how its version line is introduced in the test output
    hosted: tuple[str, ...]  # the hosted APIs (and downloads) denied whatever happens
    api_env: Callable[[ModelServer], dict[str, str]]  # key and address, passed by the profile
    final_text: str = FINAL_TEXT  # the model's last answer


# Claude Code against the scripted Anthropic API: its key and address, passed by name by the
# profile (env = [...]). One definition for every test file that drives the real binary.
CLAUDE = RealAgent(
    "claude", "Claude Code", hosted=("**.anthropic.com",),
    api_env=lambda srv: {"ANTHROPIC_API_KEY": "sk-ant-test-not-a-key", "ANTHROPIC_BASE_URL": srv.url},
)

# Codex against the scripted Responses API: its key by name (the address is a -c flag).
CODEX = RealAgent("codex", "Codex", hosted=("**.openai.com", "**.chatgpt.com"),
                  api_env=lambda srv: {"CODEX_API_KEY": "sk-test-not-a-key"})


def agent_fixtures(agent: RealAgent) -> tuple[Any, Any, Any, Any]:
    """The four fixtures every real-agent test module needs, for `agent`: its binary (named
    after it), `backend` (bwrap and Docker), `model_server` (allowed for the agent's profile and
    metered by the gate; written to the config before the daemon starts) and `daemon_env` (the
    key and the API's address). A module assigns them at its top level for pytest to find."""

    @pytest.fixture(scope="module", name=agent.name)
    def binary() -> str:
        path = agent_binary(agent.name)
        print(f"{agent.label}: {version(path)}")
        return path

    @pytest.fixture(params=["bwrap", "docker"])
    def backend(request: pytest.FixtureRequest, home: Path) -> str:
        request.getfixturevalue(agent.name)  # skips, saying how to install, when it is missing
        if request.param == "docker":
            docker_backend(home, agent.name, agent.name)
        return request.param

    @pytest.fixture
    def model_server(home: Path) -> Iterator[ModelServer]:
        with ModelServer(script=Script(final_text=agent.final_text)) as srv:
            denied = ", ".join(f'"{h}"' for h in agent.hosted)
            write_config(home, f'[gate]\ninference = ["{model_hostport(srv)}"]\n\n'
                               f'[profiles.{agent.name}.network]\n'
                               f'allow = ["{model_hostport(srv)}"]\ndeny = [{denied}]\n')
            yield srv

    @pytest.fixture
    def daemon_env(daemon_env: dict[str, str], model_server: ModelServer) -> dict[str, str]:
        return {**daemon_env, **agent.api_env(model_server)}

    return binary, backend, model_server, daemon_env


def model_hostport(srv: ModelServer) -> str:
    return f"127.0.0.1:{srv.port}"


class Person(threading.Thread):
    """Answers the inbox like a person at the console: commands by `exec_allow`; a network
    destination is approved only when named in `hosts` (the model server, or names under
    .invalid: never a public address), else denied. Records every request it saw."""

    def __init__(self, daemon: Daemon, exec_allow: bool, hosts: Iterable[str] = (),
                 patches: bool = False) -> None:
        super().__init__(daemon=True)
        self.d, self.exec_allow, self.hosts = daemon, exec_allow, frozenset(hosts)
        self.patches = patches  # every file of a Codex apply_patch allowed, whatever exec_allow says
        self.done = threading.Event()
        self.seen: list[dict[str, Any]] = []
        self.errors: list[str] = []

    def decide(self, req: dict[str, Any]) -> bool:
        if req["kind"] == "network":
            return req["subject"] in self.hosts
        if self.patches and (req.get("detail") or {}).get("tool_name") == "apply_patch":
            return True
        return self.exec_allow

    def answer(self, req: dict[str, Any]) -> tuple[bool, list[str]]:
        """(allow, the approve or deny command's further words, such as a grant's pattern)."""
        return self.decide(req), []

    @property
    def decided(self) -> list[tuple[str, str, bool]]:
        return [(r["kind"], r["subject"], r["allowed"]) for r in self.seen]

    def run(self) -> None:
        handled: set[str] = set()
        while not self.done.is_set():
            listing = self.d.cli("approvals", "--json", check=False)
            try:
                pending = json.loads(listing.stdout or "[]")
            except ValueError:
                pending = []
            for req in pending:
                if req["id"] in handled or req.get("state", "pending") != "pending":
                    continue
                handled.add(req["id"])
                allow, extra = self.answer(req)
                r = self.d.cli("approve" if allow else "deny", req["id"], *extra, check=False)
                if r.returncode != 0:
                    self.errors.append(r.stderr)
                self.seen.append({**req, "allowed": allow})
            self.done.wait(0.2)

    def asked(self, kind: str) -> list[str]:
        return [r["subject"] for r in self.seen if r["kind"] == kind]


def run_agent(daemon: Daemon, profile: str, ws: Path, command: list[str], exec_allow: bool,
              model_hostport: str, timeout: float = 300, patches: bool = False
              ) -> tuple[subprocess.CompletedProcess[str], str, Person]:
    """`pilothouse run PROFILE -w WS --wait -- COMMAND` with a person at the inbox (who allows
    Codex's apply_patch calls where `patches`)."""
    person = Person(daemon, exec_allow, [model_hostport], patches)
    person.start()
    try:
        done = daemon.cli("run", profile, "-w", str(ws), "--wait", "--", *command,
                          check=False, timeout=timeout)
    finally:
        person.done.set()
        person.join(10)
    assert not person.errors, person.errors
    run_id = re.search(r"\[pilothouse\] run (\S+) ", done.stderr)
    assert run_id, f"{done.stdout}\n{done.stderr}\n{daemon.log()}"
    return done, run_id.group(1), person


def run_claude_after(daemon: Daemon, claude: str, ws: Path, srv: ModelServer, plant: str,
                     exec_allow: bool, args: tuple[str, ...] = ()
                     ) -> tuple[subprocess.CompletedProcess[str], Person]:
    """An earlier step of the run, `plant` (shell, as the run's own command: its failures are not
    the test's), then Claude Code in print mode on the task (with `args`), a person at the inbox
    who allows commands by `exec_allow`: what a later Claude Code of a run makes of what was left."""
    command = plant + shlex.join([claude, "-p", TASK, *args, "--output-format", "json"])
    done, _run_id, person = run_agent(daemon, "claude", ws, ["sh", "-c", command], exec_allow,
                                      model_hostport(srv))
    return done, person


def history(daemon: Daemon, run_id: str) -> list[dict[str, Any]]:
    out = daemon.cli("history", "--json", "--run", run_id, "--limit", "2000").stdout
    return json.loads(out)


def events(hist: list[dict[str, Any]], kind: str, **data: object) -> list[dict[str, Any]]:
    return [e for e in hist if e["kind"] == kind
            and all((e.get("data") or {}).get(k) == v for k, v in data.items())]


def network_hosts(hist: list[dict[str, Any]]) -> set[str]:
    """Every host:port the gate decided on for this run."""
    return {f"{(e.get('data') or {}).get('host')}:{(e.get('data') or {}).get('port')}"
            for e in events(hist, "net.decision")}


def assert_only_the_model_server(hist: list[dict[str, Any]], srv: ModelServer,
                                 person: Person) -> None:
    """The run's network went to the model server alone, and the person was asked no host."""
    assert network_hosts(hist) <= {model_hostport(srv)}, network_hosts(hist)
    assert person.asked("network") == []


def metered_history(daemon: Daemon, run_id: str, answers: int, wait_s: float = 10.0) -> list[dict[str, Any]]:
    """The run's history once it holds `answers` tokens events: bulk events (tokens) are written
    in batches, so the last answer's may land just after the run has ended. Bounded wait; the
    caller's assertions then say what is missing."""
    deadline = time.monotonic() + wait_s
    while True:
        hist = history(daemon, run_id)
        if len(events(hist, "tokens")) >= answers or time.monotonic() > deadline:
            return hist
        time.sleep(0.2)


def token_sums(hist: list[dict[str, Any]]) -> dict[str, int]:
    sums: dict[str, int] = {}
    for e in events(hist, "tokens"):
        for key, value in (e.get("data") or {}).items():
            if isinstance(value, int) and not isinstance(value, bool) and key.endswith("tokens"):
                sums[key] = sums.get(key, 0) + value
    return sums


def write_config(home: Path, text: str) -> None:
    with open(home / "config.toml", "a") as f:
        f.write(text)


def agent_workspace(ws: Path, uid: int | None = None) -> Path:
    """A git repository, committed once, owned by whoever the agent runs as."""
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t.invalid", "PATH": "/usr/bin:/bin", "HOME": str(ws)}
    subprocess.run(["git", "init", "-q", "-b", "main", str(ws)], check=True, env=env)
    subprocess.run(["git", "-C", str(ws), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(ws), "commit", "-qm", "start"], check=True, env=env)
    return ws


def docker_backend(home: Path, profile: str, agent: str) -> None:
    """Put `profile` on Docker with the local agents image; skip, saying why, when there is no
    engine or the agent is not installed to go in it."""
    from tests.images.build import docker_client_or_skip, python_image

    client = docker_client_or_skip()

    from .agent_image import agents_image

    image, holds = agents_image(client, python_image(client))
    if agent not in holds:
        pytest.skip(f"{agent} is not installed on the host to go into the image; {INSTALL_HINT}")
    write_config(home, f'\n[profiles.{profile}]\nsandbox = "docker"\nimage = "{image}"\n')


def hand_over(ws: Path, backend: str) -> None:
    """Nothing now: a root daemon runs a container in a root-owned workspace as pilothouse-agent
    over an id-mapped view, as it runs bubblewrap. Before review s32 the workspace became uid
    1000's here, a person's account on most hosts (cloudsdk, ubuntu): the agent then ran as that
    person, and the daemon's API key, root's, is withheld from such an agent now (run_prep.py)."""


def assert_tokens(hist: list[dict[str, Any]], field: str, expected: int) -> None:
    """The recorded sum of `field` equals what the server sent (also when the client hung up
    right after the last event, as Codex does: the gate keeps what passed through)."""
    got = token_sums(hist).get(field, 0)
    assert got == expected, (field, got, expected, token_sums(hist))
