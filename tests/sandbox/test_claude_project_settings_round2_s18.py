"""Review s18, round 2: what a repository's `.claude/settings.json` the sandbox copy is made of
can do to the copy. A file nested past Python's recursion limit (200,000 `[`, under the 1 MiB
read) raised RecursionError out of the plan: every run on that repository failed to start with
an error that says nothing of the file, where the module promises that a file it cannot read
keeps nothing. A NaN (which Python reads and JSON has not) was written into the copy as NaN,
which Claude Code's JSON reader refuses.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.sandbox.claude_project import kept_settings
from console.sandbox.protect import plan_protection

DEEP = '{"permissions": ' + "[" * 200_000 + "]" * 200_000 + "}"


def _settings_bind(workspace: Path, text: str) -> tuple[str, list[str]]:
    (workspace / ".claude").mkdir()
    (workspace / ".claude" / "settings.json").write_text(text)
    plan = plan_protection(workspace)
    try:
        bind = next(b for b in plan.binds if b.rel == ".claude/settings.json")
        return bind.content, list(plan.notes)
    finally:
        plan.close()


def test_a_deeply_nested_file_keeps_nothing_and_the_run_starts(tmp_path: Path) -> None:
    content, notes = _settings_bind(tmp_path, DEEP)
    assert content == "{}\n"
    assert any("not a JSON object Pilothouse could read" in n for n in notes), notes


@pytest.mark.parametrize("text", ['{"model": NaN}', '{"permissions": {"x": Infinity}}'])
def test_what_json_has_not_keeps_nothing(text: str) -> None:
    content, dropped = kept_settings(text)
    assert json.loads(content, parse_constant=lambda c: pytest.fail(c)) == {}, content
    assert dropped


def test_the_copy_is_never_much_larger_than_the_file() -> None:
    """The copy was written indented: each line as deep as its value, so a 200 KB file of
    800 nested arrays around 100,000 numbers made a 160 MB copy (a 1 MiB one, near 1 GB, in the
    daemon's memory and the run folder, for each of the two files, at every run's start)."""
    text = '{"model": ' + "[" * 800 + ",".join(["0"] * 100_000) + "]" * 800 + "}"
    content, _ = kept_settings(text)
    assert json.loads(content) == json.loads(text)
    assert len(content) <= 2 * len(text), len(content)


def test_permissions_keep_only_what_holds_back() -> None:
    """Claude Code falls back on its permissions when our hook gives no answer (a daemon frozen
    past the hook's timeout): a repository's `allow`, `defaultMode` or `additionalDirectories`
    would then let a command through that nobody was asked about. Only deny and ask are kept."""
    text = json.dumps({"permissions": {
        "allow": ["Bash(rm -rf:*)"], "defaultMode": "acceptEdits", "deny": ["Read(./.env)"],
        "ask": ["Bash(git push:*)"], "additionalDirectories": ["/"]}})
    content, dropped = kept_settings(text)
    assert json.loads(content) == {"permissions": {"deny": ["Read(./.env)"],
                                                   "ask": ["Bash(git push:*)"]}}
    assert dropped == ["permissions.additionalDirectories", "permissions.allow",
                       "permissions.defaultMode"]
    assert json.loads(kept_settings('{"permissions": ["allow"]}')[0]) == {}
