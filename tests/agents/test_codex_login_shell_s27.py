"""Review s27 (real Codex 0.171.0, bubblewrap, root daemon): Codex went around the run's bash
guard when the agent's account has bash as its login shell.

The s21 guard is the run's bin/bash, first on PATH. Codex runs a login shell that is bash by
its path from /etc/passwd (/bin/bash), not the first bash on PATH; the s21 test passed only
because the agents it ran as (pilothouse-agent, nologin) have none. An ordinary person's
account has /bin/bash: with the hook killed, a command in their workspace ran and nobody was
asked. The sandbox's /etc/passwd now names the guard as every account's login shell: the
host's accounts under bubblewrap, the image's under Docker (an image whose uid 1000, the uid a
root daemon's containers run as, has bash: built here from the agents image).
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from tests.conftest import Daemon, ensure_user, needs_bwrap

from .hook_killer import assert_codex_asks_with_hooks_killed
from .model_server import ModelServer
from .real_harness import (
    CODEX,
    agent_fixtures,
    agent_workspace,
    write_config,
)

pytestmark = needs_bwrap
codex, backend, model_server, daemon_env = agent_fixtures(CODEX)
BASH_USER = "phbashperson"  # a person whose login shell is bash, as most are
GUARD = "/run/pilothouse/bin/bash"


def _owned_by_a_bash_user(ws: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: a second account, whose login shell is bash, owns the workspace")
    ensure_user(BASH_USER, "--no-create-home", "--shell", "/bin/bash")
    uid = pwd.getpwnam(BASH_USER).pw_uid
    for path in [ws, *ws.rglob("*")]:
        os.lchown(path, uid, uid)


def test_the_sandbox_names_the_guard_as_the_login_shell(daemon: Daemon, workspace: Path) -> None:
    _owned_by_a_bash_user(workspace)
    done = daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c",
                      "id -un; getent passwd \"$(id -u)\" root")
    name, mine, root = done.stdout.splitlines()[-3:]
    assert name == BASH_USER, done.stdout  # the agent runs as the workspace's owner
    assert mine.split(":")[6] == GUARD and root.split(":")[6] == GUARD, done.stdout
    assert pwd.getpwnam(BASH_USER).pw_shell == "/bin/bash"  # the host's file is untouched


def test_codex_as_a_bash_user_with_its_hook_killed_is_asked(
        codex: str, model_server: ModelServer, daemon: Daemon, workspace: Path) -> None:
    ws = agent_workspace(workspace)
    _owned_by_a_bash_user(ws)
    assert_codex_asks_with_hooks_killed(codex, model_server, daemon, ws)


def _image_with_a_bash_person() -> str:
    """The agents image plus an account for uid 1000 whose login shell is bash (built once)."""
    import io

    from tests.images.build import docker_client_or_skip, python_image

    from .agent_image import agents_image

    client = docker_client_or_skip()
    base, holds = agents_image(client, python_image(client))
    if "codex" not in holds:
        pytest.skip("codex is not installed on the host to go into the image")
    tag = f"pilothouse-test/agents-bash-person:{base.rsplit(':', 1)[-1][:24]}"
    try:
        client.images.get(tag)
    except Exception:
        line = "person:x:1000:1000::/home/person:/usr/bin/bash"
        dockerfile = (f"FROM {base}\nRUN [\"/bin/sh\", \"-c\", "
                      f"\"echo '{line}' >> /etc/passwd\"]\n")
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True,
                            forcerm=True, network_mode="none")
    return tag


@pytest.fixture
def codex_in_docker(codex: str, home: Path, model_server: ModelServer) -> str:
    """The codex profile on Docker with that image, in the config before the daemon starts."""
    if os.geteuid() != 0:
        pytest.skip("needs root: a root daemon runs containers as uid 1000, the image's person")
    image = _image_with_a_bash_person()
    write_config(home, f'\n[profiles.codex]\nsandbox = "docker"\nimage = "{image}"\n')
    return image


def test_codex_in_docker_as_an_image_bash_account_with_its_hook_killed_is_asked(
        codex: str, codex_in_docker: str, model_server: ModelServer, daemon: Daemon,
        workspace: Path) -> None:
    ws = agent_workspace(workspace)
    for path in [ws, *ws.rglob("*")]:  # the agent runs as uid 1000, the image's bash person
        os.lchown(path, 1000, 1000)
    (ws / "who.sh").write_text('grep ":1000:" /etc/passwd\n')
    shown = daemon.cli("run", "codex", "-w", str(ws), "--wait", "--", "sh", "who.sh")
    assert "(codex in docker)" in shown.stdout + shown.stderr, (shown.stdout, shown.stderr)
    assert shown.stdout.strip().splitlines()[-1].endswith(f":{GUARD}"), shown.stdout
    assert_codex_asks_with_hooks_killed(codex, model_server, daemon, ws)
