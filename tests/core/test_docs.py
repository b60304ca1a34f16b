"""The shell blocks in README.md and docs/ are checked against the real CLI: every `pilothouse`
command names a real subcommand and real options. The README's quick-start block is run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from console.cli.main import main
from tests.conftest import REPO, Daemon, needs_bwrap
from tests.core.cli_invoke import invoke

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"```(?:sh|bash|console)\n(.*?)```", re.S)


def shell_blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


def pilothouse_commands(block: str) -> list[list[str]]:
    out = []
    for raw in block.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        for i, w in enumerate(words):
            if Path(w).name == "pilothouse":
                out.append(words[i + 1 :])
                break
    return out


def _subcommand_and_options(words: list[str]) -> tuple[list[str], list[str]]:
    path, options = [], []
    group = main
    for w in words:
        if w == "--":
            break
        if w.startswith("-"):
            options.append(w.split("=", 1)[0])
            continue
        cmds = getattr(group, "commands", None)
        if cmds and w in cmds and not options:
            path.append(w)
            group = cmds[w]
    return path, options


CASES = [(p.name, cmd) for p in DOCS for b in shell_blocks(p) for cmd in pilothouse_commands(b)]


def test_docs_have_commands() -> None:
    assert len(CASES) >= 3


@pytest.mark.parametrize(("doc", "words"), CASES, ids=[f"{d}:{' '.join(w)[:40]}" for d, w in CASES])
def test_documented_command_exists(doc: str, words: list[str]) -> None:
    path, options = _subcommand_and_options(words)
    result = invoke(main, [*path, "--help"])
    assert result.exit_code == 0, f"{doc}: pilothouse {' '.join(path)}: {result.output}"
    for opt in options:
        if opt in ("-h", "--help"):
            continue
        assert re.search(rf"(^|[\s,/]){re.escape(opt)}([\s,=/]|$)", result.output, re.M), (
            f"{doc}: `pilothouse {' '.join(words)}` uses {opt}, which "
            f"`pilothouse {' '.join(path)}` does not have"
        )


@needs_bwrap
def test_readme_quick_start_block_runs(daemon: Daemon, workspace: Path) -> None:
    block = next(b for b in shell_blocks(REPO / "README.md") if "hello from the sandbox" in b)
    outputs = []
    for words in pilothouse_commands(block):
        outputs.append(daemon.cli(*words, cwd=workspace).stdout)
    assert "hello from the sandbox" in outputs[0]
    assert "run.started" in outputs[1] and "run.ended" in outputs[1]
    assert outputs[2].startswith("ok: ")
