"""A Codex command started by /bin/sh with its hook killed (s21's and s27's leftover, s32).

Codex runs a call whenever its hook ends other than with exit 2, and a process of the run can
kill the hook. Its commands start through the run's bin/bash guard (codex_bash.py), which asks
a command whose hook never answered; but `exec_command` takes a `shell`, and with
`shell: "/bin/sh"` Codex started /bin/sh by its path, past the guard: with every hook killed,
the model's command ran and nobody was asked. The sandbox's /bin/sh is the guard's too now:
a `sh -c CMD` whose parent is Codex is claimed or asked exactly as bash's is; any other sh
(make's, a script's) is the real one. Under bubblewrap: a container's /bin/sh is the image's
own (often busybox, whose applets a script guard cannot stand in for), which stays open
(docs/threat-model.md); `shell: "bash"` goes through the guard on both backends.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap

from .hook_killer import with_hooks_killed
from .model_server import COMMAND, ModelServer
from .real_harness import (
    CODEX,
    agent_fixtures,
    agent_workspace,
    hand_over,
    model_hostport,
    run_agent,
)
from .test_codex_attacks_s19 import Turns, codex_exec, exec_command

pytestmark = needs_bwrap
codex, backend, model_server, daemon_env = agent_fixtures(CODEX)


def _codex_runs(backend: str, codex: str, model_server: ModelServer, daemon: Daemon,
                workspace: Path, call: dict, *, killed: bool, allow: bool, files: dict | None = None):
    """Codex makes one exec_command call in a run (every hook killed where `killed`), a person
    answering `allow`: (workspace, the run's end, the person)."""
    ws = agent_workspace(workspace)
    for name, text in (files or {}).items():
        (ws / name).write_text(text)
    hand_over(ws, backend)
    model_server.script = Turns(turns=[[call]])
    command = codex_exec(codex, model_server)
    done, _run_id, person = run_agent(daemon, "codex", ws, with_hooks_killed(command) if killed else command,
                                      allow, model_hostport(model_server))
    return ws, done, person


# Codex starts `shell: "/bin/sh"` (and any shell it does not know) as /bin/sh or /usr/bin/sh:
# by path, never the bash first on PATH. `shell: "bash"` reaches the guard on PATH.
@pytest.mark.parametrize(("backend", "shell"), [("bwrap", "/bin/sh"), ("bwrap", "dash"),
                                                ("bwrap", "bash"), ("docker", "bash")],
                         indirect=["backend"])
def test_a_command_codex_starts_by_a_shells_path_is_asked_when_its_hook_was_killed(
        backend: str, codex: str, model_server: ModelServer, daemon: Daemon, workspace: Path,
        shell: str) -> None:
    ws, done, person = _codex_runs(backend, codex, model_server, daemon, workspace,
                                   exec_command(cmd=COMMAND, shell=shell), killed=True, allow=False)
    assert not (ws / "proof.txt").exists(), f"the command ran, nobody was asked\n{done.stderr[-3000:]}"
    assert person.asked("exec") == [COMMAND], (person.seen, done.stderr[-3000:])


@pytest.mark.parametrize("shell", ["/bin/sh", "bash"])
def test_with_its_hook_alive_the_command_runs_once_allowed(
        backend: str, codex: str, model_server: ModelServer, daemon: Daemon, workspace: Path,
        shell: str) -> None:
    """The guard claims the hook's allow: the person is asked once, and the command runs."""
    ws, done, person = _codex_runs(backend, codex, model_server, daemon, workspace,
                                   exec_command(cmd=COMMAND, shell=shell), killed=False, allow=True)
    assert (ws / "proof.txt").read_text().strip() == "hi", done.stderr[-3000:]
    assert person.asked("exec") == [COMMAND], person.seen


@pytest.mark.parametrize("command", ["sh ./w.sh", "bash ./w.sh"])
def test_an_allowed_command_that_execs_a_shell_runs_without_a_second_question(
        backend: str, codex: str, model_server: ModelServer, daemon: Daemon, workspace: Path,
        command: str) -> None:
    """bash runs a `-c` string's last command in its own process, so the shell `sh ./w.sh` starts
    has Codex for its parent: the guard there passes it (ph-guard's claimed mark), where it once
    refused it as a form it cannot check."""
    ws, done, person = _codex_runs(backend, codex, model_server, daemon, workspace,
                                   exec_command(cmd=command), killed=False, allow=True,
                                   files={"w.sh": "echo hi > proof.txt\n"})
    assert (ws / "proof.txt").read_text().strip() == "hi", done.stderr[-3000:]
    assert person.asked("exec") == [command], person.seen
