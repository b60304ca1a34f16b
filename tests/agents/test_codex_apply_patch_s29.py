"""Session 29: Codex's apply_patch is asked, file by file, like Claude Code's file tools.

Until s29 the run's Codex config hooked `Bash` alone, so apply_patch wrote any file in the
sandbox nobody was asked about, whatever the rules or a person's grants said (docs/agents.md
listed it as a limit). Codex 0.171 runs PreToolUse for apply_patch too, with the patch text in
`tool_input.command`; the hook now asks one request per file the patch names ("Write PATH" for
Add File and Move to, "Edit PATH" for Update File, "Delete PATH"), named where it lands, links
followed (console/sandbox/inside_writes.py), so a grant for `Write /workspace/src/*` covers
Codex's files in src/ and nothing else. Real Codex, bubblewrap and Docker, a scripted model.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import Daemon, needs_bwrap

from .model_server import ModelServer
from .real_harness import (
    CODEX,
    Person,
    agent_fixtures,
    agent_workspace,
    hand_over,
    model_hostport,
)
from .test_claude_link_grant_s28 import MAKEFILE, PLANTED, GrantsAFolder
from .test_codex_attacks_s19 import Turns, apply_patch, codex_exec

pytestmark = needs_bwrap
codex, backend, model_server, daemon_env = agent_fixtures(CODEX)

# Update File's hunk for MAKEFILE: Codex writes PLANTED in its place.
UPDATE = "@@\n all:\n-\t@echo building\n+\ttouch /tmp/planted-by-the-model\n"


def update(path: str) -> dict:
    return {"type": "custom_tool_call", "name": "apply_patch",
            "input": f"*** Begin Patch\n*** Update File: {path}\n{UPDATE}*** End Patch\n"}


class AllowsSrc(Person):
    """Allows a file request for a path under /workspace/src/ and nothing else."""

    def answer(self, req: dict[str, Any]) -> tuple[bool, list[str]]:
        if req["kind"] != "custom":
            return self.decide(req), []
        return req["subject"].split(" ", 1)[1].startswith("/workspace/src/"), []


def play_codex(daemon: Daemon, codex: str, ws: Path, srv: ModelServer, person: Person,
               turns: list) -> subprocess.CompletedProcess[str]:
    """Codex plays `turns` with `person` at the inbox: the finished `run --wait`."""
    srv.script = Turns(turns=turns)
    person.start()
    try:
        done = daemon.cli("run", "codex", "-w", str(ws), "--wait", "--", *codex_exec(codex, srv),
                          check=False, timeout=300)
    finally:
        person.done.set()
        person.join(10)
    assert not person.errors, person.errors
    return done


def run_codex(daemon: Daemon, codex: str, ws: Path, srv: ModelServer, person: Person,
              turns: list) -> list[tuple[str, bool]]:
    """Codex plays `turns` with `person` at the inbox; the file requests it saw, with answers."""
    done = play_codex(daemon, codex, ws, srv, person, turns)
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return [(r["subject"], r["allowed"]) for r in person.seen if r["kind"] == "custom"]


def test_each_file_of_a_patch_is_asked_and_one_denied_writes_none(
        backend: str, codex: str, model_server: ModelServer, daemon: Daemon, workspace: Path) -> None:
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    person = AllowsSrc(daemon, False, [model_hostport(model_server)])
    files = run_codex(daemon, codex, ws, model_server, person, [
        [apply_patch({"src/new.py": "print('new')", "Makefile": PLANTED})]])
    assert files == [("Write /workspace/src/new.py", True), ("Write /workspace/Makefile", False)], files
    assert not (ws / "Makefile").exists() and not (ws / "src").exists(), "a denied patch wrote"


def test_a_folder_grant_covers_codex_files_in_it_but_not_a_link_out_of_it(
        backend: str, codex: str, model_server: ModelServer, daemon: Daemon, workspace: Path) -> None:
    (workspace / "src").mkdir()
    (workspace / "Makefile").write_text(MAKEFILE)
    os.symlink("..", workspace / "src" / "up")
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    person = GrantsAFolder(daemon, [model_hostport(model_server)], "Write /workspace/src/*")
    files = run_codex(daemon, codex, ws, model_server, person, [
        [apply_patch({"src/a.py": "print('a')"})],  # asked: the person grants the folder
        [apply_patch({"src/b.py": "print('b')"})],  # the grant covers it
        [update("src/up/Makefile")]])  # lands on the top-level Makefile: asked, denied
    assert (ws / "src" / "a.py").exists() and (ws / "src" / "b.py").exists(), files
    assert (ws / "Makefile").read_text() == MAKEFILE, f"written through the link: {files}"
    assert files == [("Write /workspace/src/a.py", True),
                     ("Edit /workspace/Makefile (asked as src/up/Makefile: a link leads there)", False)], files


def test_a_file_with_another_name_is_refused_unasked(
        backend: str, codex: str, model_server: ModelServer, daemon: Daemon, workspace: Path) -> None:
    """Codex writes a file in place: through a hard link, the top-level Makefile would change."""
    (workspace / "src").mkdir()
    (workspace / "Makefile").write_text(MAKEFILE)
    os.link(workspace / "Makefile", workspace / "src" / "Makefile.in")
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    person = AllowsSrc(daemon, False, [model_hostport(model_server)])
    files = run_codex(daemon, codex, ws, model_server, person, [[update("src/Makefile.in")]])
    assert (ws / "Makefile").read_text() == MAKEFILE, f"written through a hard link: {files}"
    assert files == [], files  # refused without asking
