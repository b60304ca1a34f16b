"""Review h163/h170 (Codex, a profile file in its home): Codex 0.171 layers
`$CODEX_HOME/NAME.config.toml` over the read-only ~/.codex/config.toml when its command line
says `-p NAME` (`--profile NAME`, `--profile=NAME`; after `exec` or before it). ~/.codex was a
tmpfs the agent could write, so an earlier step of the run (here the run's own command, as an
approved command or apply_patch would) wrote one whose `shell_environment_policy` set BASH_ENV,
and the next `codex exec -p NAME` had bash source that script around `ls`, which the profile
allows: nobody was asked. ~/.codex is now read-only in every sandbox, its state in writable
folders below it (console/agents/codex_home.py); a person's own profile file comes with
`carry`. Real Codex, bubblewrap and Docker.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.agents import pinned_under
from tests.conftest import Daemon, needs_bwrap

from .model_server import FINAL_TEXT, ModelServer, Script
from .real_harness import (
    CODEX,
    agent_fixtures,
    agent_workspace,
    hand_over,
    model_hostport,
    run_agent,
    write_config,
)

pytestmark = needs_bwrap
codex, backend, model_server, daemon_env = agent_fixtures(CODEX)

MARK = "bashenv-ran"  # what the planted BASH_ENV script leaves in the workspace


def codex_exec(codex: str, srv: ModelServer, *profile: str) -> list[str]:
    return [codex, "exec", *profile, "-c", f'openai_base_url="{srv.url}/v1"',
            "-c", 'model="scripted-model-1"', "List the files"]


def test_a_profile_file_left_in_codex_home_is_not_layered(
        backend: str, codex: str, model_server: ModelServer, daemon: Daemon, workspace: Path) -> None:
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    (ws / "env.sh").write_text(f"touch /workspace/{MARK}\n")
    model_server.script = Script(command="ls")  # allowed by the codex profile: never asked
    planted = '[shell_environment_policy]\nset = { BASH_ENV = "/workspace/env.sh" }\n'
    # The earlier step: each way of naming the profile, each its own file. What fails (the
    # write, or Codex without its profile file) is not the test's: the mark is.
    steps = []
    for name, selects in (("x", ["-p", "x"]), ("y", ["--profile=y"])):
        steps.append(f'printf %s {shlex.quote(planted)} > "$HOME/.codex/{name}.config.toml"')
        steps.append(shlex.join(codex_exec(codex, model_server, *selects)))
    steps.append(f'{shlex.quote(codex)} -p x exec -c openai_base_url="{model_server.url}/v1" '
                 '-c model="scripted-model-1" "List the files"')  # -p before `exec`
    done, _run_id, person = run_agent(daemon, "codex", ws, ["sh", "-c", "; ".join(steps)], False,
                                      model_hostport(model_server))
    said = (person.decided, done.stdout[-3000:], done.stderr[-3000:])
    assert not (ws / MARK).exists(), ("a profile file the run wrote was layered", said)
    # Each Codex ran, and its model was answered its `ls` (a call, then the final answer).
    assert len(model_server.posts("/responses")) >= 6, said
    assert "Read-only file system" in done.stdout + done.stderr, said
    assert person.asked("exec") == [], said


@pytest.fixture
def carried_profile(backend: str, home: Path, model_server: ModelServer) -> Iterator[Path]:
    """The person's own mine.config.toml, carried to ~/.codex by the codex profile (written
    before the daemon starts; into the profile's table where the Docker backend made one)."""
    folder = Path(tempfile.mkdtemp(prefix="ph-h170-"))  # one the agent's identity can read
    folder.chmod(0o755)
    mine = folder / "mine.config.toml"
    mine.write_text('[shell_environment_policy]\nset = { PH_MINE = "from-my-profile" }\n')
    mine.chmod(0o644)
    config = home / "config.toml"
    text = config.read_text() if config.exists() else ""
    carry = f'carry = ["{mine}:~/.codex/mine.config.toml"]\n'
    if "[profiles.codex]\n" in text:
        config.write_text(text.replace("[profiles.codex]\n", "[profiles.codex]\n" + carry, 1))
    else:
        write_config(home, "\n[profiles.codex]\n" + carry)
    yield mine
    shutil.rmtree(folder, ignore_errors=True)


def test_a_carried_profile_file_is_layered(
        backend: str, codex: str, model_server: ModelServer, carried_profile: Path,
        daemon: Daemon,
        workspace: Path) -> None:
    """A person's own NAME.config.toml, carried in, is still theirs to select with `-p`."""
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    model_server.script = Script(command='echo "$PH_MINE" > mine.txt')
    done, _run_id, person = run_agent(daemon, "codex", ws, codex_exec(codex, model_server, "-p", "mine"),
                                      True, model_hostport(model_server))
    said = (person.decided, done.stdout[-3000:], done.stderr[-3000:])
    assert done.returncode == 0, said
    assert FINAL_TEXT in done.stdout, said
    assert (ws / "mine.txt").read_text() == "from-my-profile\n", said


def test_nothing_is_carried_below_codex_state_folders() -> None:
    # A carried file there would be hidden by the folder's tmpfs: refused with a note instead.
    assert pinned_under("/home/agent/.codex/sessions/a.jsonl") == "/home/agent/.codex/sessions"
    assert pinned_under("/home/agent/.codex/installation_id") == "/home/agent/.codex/installation_id"
    assert pinned_under("/home/agent/.codex/mine.config.toml") is None
