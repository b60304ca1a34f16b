"""Attack review s21 of the exec policy, continued from test_exec_attacks_s21.py (which holds
the shell facts and the first findings). Commands are data only: never run in a shell here.

Facts relied on (git 2.39, Debian 12), checked in a scratch repository with a bare remote:
- git's dashed programs in its exec path are git itself under another name:
  `/usr/lib/git-core/git-push --force origin HEAD:main` prints "(forced update)".
"""

from __future__ import annotations

import pytest

from console.policy import ExecRules

RULES = ExecRules(allow=["ls", "git status"], ask=["git commit"],
                  forbid=["git push --force", "git reset --hard"], default="allow")


# 20. `git-push` (a path to git's dashed program, or the name on a PATH holding git's exec
#     path) is `git push`: the forbid rule saw a program named git-push and let it through.
@pytest.mark.parametrize("command", [
    "/usr/lib/git-core/git-push --force origin HEAD:main",
    "/usr/libexec/git-core/git-push -f",
    "git-push origin +main",
    "env git-reset --hard",
])
def test_git_dashed_program_is_git_and_its_subcommand(command: str) -> None:
    assert RULES.evaluate(command).action == "deny", command


def test_git_dashed_program_asks_as_its_subcommand() -> None:
    assert RULES.evaluate("/usr/lib/git-core/git-commit -m x").action == "ask"
    assert RULES.evaluate("git-lfs ls-files").action == "allow"
