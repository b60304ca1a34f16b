"""A process of the run that kills every hook process it sees (review s21): what a test helper
left running by an approved `pytest` could do. Python, so it needs no pkill in an image; the
hook's name is split so that no command line holding this script matches it."""

import shlex
from pathlib import Path

from tests.conftest import Daemon

from .model_server import COMMAND, ModelServer
from .real_harness import TASK, model_hostport, run_agent

KILL_HOOKS = r"""
import os
mark, me = b"ph-claude-" + b"hook", os.getpid()
while True:
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != me:
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if mark in f.read():
                        os.kill(int(p), 9)
            except OSError:
                pass
"""


def with_hooks_killed(command: list[str]) -> list[str]:
    """`command` started beside the killer, in the sandbox."""
    return ["sh", "-c", f"python3 -c {shlex.quote(KILL_HOOKS)} >/dev/null 2>&1 & exec {shlex.join(command)}"]


def assert_codex_asks_with_hooks_killed(codex: str, model_server: ModelServer, daemon: Daemon,
                                        ws: Path) -> None:
    """Codex runs the model's command with every hook killed: the person is asked for it, and
    (answering no) the command does not run."""
    command = [codex, "exec", "-c", f'openai_base_url="{model_server.url}/v1"', "-c",
               'model="scripted-model-1"', TASK]
    done, _run_id, person = run_agent(daemon, "codex", ws, with_hooks_killed(command), False,
                                      model_hostport(model_server))
    assert not (ws / "proof.txt").exists(), f"the command ran, nobody was asked\n{done.stderr[-2000:]}"
    assert person.asked("exec") == [COMMAND], (person.seen, done.stderr[-2000:])
