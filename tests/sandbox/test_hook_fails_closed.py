"""The Claude Code / Codex hook blocks the tool call whenever it cannot decide. Both agents read
only exit 2, or exit 0 with permissionDecision "deny", as a block: a hook that exits with any
other code, or outlives its timeout, is a "non-blocking error" and the tool call goes ahead.
Found by an attack review of the approval paths."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from console.agents import CLAUDE_SETTINGS, CODEX_HOOK_TIMEOUT
from console.config.load import ConfigError, load
from console.config.schema import APPROVAL_TIMEOUT_MAX
from console.sandbox.base import prepare_run_dir, sh_wrapper


@pytest.mark.parametrize("where", ["[defaults]", "[profiles.claude]"])
def test_an_approval_timeout_past_the_agents_hook_timeout_is_refused(tmp_path: Path,
                                                                     where: str) -> None:
    """Claude Code gives up on the hook after its timeout and then runs the tool: a request
    must be answered (at worst denied) before. Before, approval_timeout = "30m" loaded."""
    path = tmp_path / "c.toml"
    path.write_text(f'{where}\napproval_timeout = "30m"\n')
    with pytest.raises(ConfigError) as refused:
        load(path)
    assert "approval_timeout" in str(refused.value) and "hook" in str(refused.value)
    assert refused.value.line == 2
    path.write_text(f'{where}\napproval_timeout = "14m"\n')
    assert load(path).profile("claude").approval_timeout == 840


def test_the_agents_hook_timeouts_outlast_every_allowed_approval_timeout() -> None:
    hook = CLAUDE_SETTINGS["hooks"]["PreToolUse"][0]["hooks"][0]["timeout"]
    assert min(hook, CODEX_HOOK_TIMEOUT) >= APPROVAL_TIMEOUT_MAX + 30


def test_the_direct_hook_blocks_when_its_helper_cannot_start(tmp_path: Path) -> None:
    """bwrap runs start the helper without a shell (direct_wrapper): an import that fails
    must still block, not exit 1."""
    rd = tmp_path / "run"
    assert prepare_run_dir(rd, interpreter=sys.executable) == []
    (rd / "bin" / "inside.py").write_text("raise ImportError('broken helper')\n")
    shutil.rmtree(rd / "bin" / "__pycache__", ignore_errors=True)
    r = subprocess.run([str(rd / "bin" / "ph-claude-hook")], input="{}", capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "could not start" in r.stderr, r.stderr


def test_the_hook_blocks_when_the_helper_fails_inside(tmp_path: Path, monkeypatch) -> None:
    """An error inside the helper that its own handlers do not catch: exit 2, not 1."""
    from console.sandbox import inside

    monkeypatch.setattr(inside, "main", lambda argv: 1 / 0)
    monkeypatch.setattr(inside.posix, "_exit", lambda code: (_ for _ in ()).throw(SystemExit(code)))
    with pytest.raises(SystemExit) as done:
        inside.run_and_exit(["ph-claude-hook"])
    assert done.value.code == 2


@pytest.mark.parametrize("python3", [None, "/usr/bin/python3"])
@pytest.mark.skipif(shutil.which("bwrap") is None or not Path("/usr/bin/dash").exists(),
                    reason="needs bwrap and dash")
def test_the_hook_without_python_still_blocks(tmp_path: Path, python3: str | None) -> None:
    """An image without python3 (the sh wrapper), or one whose python3 cannot run the helper."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    hook = bin_dir / "ph-claude-hook"
    hook.write_text(sh_wrapper("ph-claude-hook"))
    hook.chmod(0o755)
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/usr/bin/dash", "/bin/sh"]
    if python3 is not None:  # a python3 that fails (too old for the helper, say)
        fake = tmp_path / "python3"
        fake.write_text("#!/bin/sh\necho 'SyntaxError: invalid syntax' >&2\nexit 1\n")
        fake.chmod(0o755)
        argv += ["--ro-bind", str(fake), python3]
    for lib in ("/lib", "/lib64", "/usr/lib"):
        if Path(lib).exists():
            argv += ["--ro-bind", lib, lib]
    argv += ["--ro-bind", str(bin_dir), "/run/pilothouse/bin", "--setenv", "PATH",
             "/run/pilothouse/bin", "/bin/sh", "/run/pilothouse/bin/ph-claude-hook"]
    r = subprocess.run(argv, input=json.dumps({"tool_name": "Bash", "tool_input": {
        "command": "git push --force"}}), capture_output=True, text=True, timeout=30)
    # Before: exit 127 (or the python's 1) and nothing on stdout, which Claude Code and Codex
    # read as a hook that failed: they run the tool.
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "ph-claude-hook" in r.stderr, r.stderr
