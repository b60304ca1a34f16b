"""Review h195: a folder's write grant and the protected places made below it.

`--pattern "Write /workspace/src/*"` (the documented way to allow writes under a folder)
covered `Write /workspace/src/.git/config` and `Write /workspace/src/.claude/settings.json`:
real Codex's apply_patch wrote a nested repository whose config names a core.fsmonitor (run by
git on the host as soon as a person's prompt or `git status` enters src/) and a nested agent
config, nobody asked (tests/agents/test_review_h195_codex.py). The sandbox protects these only
where they stand at the run's start; a prefix pattern now covers none made below it.
"""

from __future__ import annotations

import pytest

from console.policy.grants import new_grant

FOLDER = "Write /workspace/src/*"

PROTECTED = [
    "Write /workspace/src/.git/config",
    "Write /workspace/src/.git/hooks/pre-commit",
    "Write /workspace/src/.GIT/config",
    "Write /workspace/src/.claude/settings.json",
    "Write /workspace/src/.codex/config.toml",
    "Write /workspace/src/.mcp.json",
    "Write /workspace/src/.vscode/tasks.json",
    "Write /workspace/src/.envrc",
    "Write /workspace/src/.aider.conf.yml",
    "Write /workspace/src/.husky/pre-commit",
    "Write /workspace/src/.mcp.json (asked as /workspace/src/l: a link leads there)",
    "Write /workspace/src/x.py (asked as /workspace/src/.git/y: a link leads there)",
]


def grant(effect: str = "allow"):
    return new_grant("custom", FOLDER, effect, "run", run_id="r1", profile="p",
                     decided_by="me", exact=False)


@pytest.mark.parametrize("subject", PROTECTED)
def test_a_folder_grant_does_not_cover_a_protected_place_below_it(subject: str) -> None:
    assert not grant().matches(subject), subject


@pytest.mark.parametrize("subject", PROTECTED)
def test_a_folder_deny_grant_still_covers_it(subject: str) -> None:
    assert grant("deny").matches(subject), subject  # strictest match wins


@pytest.mark.parametrize("subject", ["Write /workspace/src/a.py", "Write /workspace/src/git/config",
                                     "Write /workspace/src/.gitignore", "Write /workspace/src/my.claude"])
def test_ordinary_files_stay_covered(subject: str) -> None:
    assert grant().matches(subject), subject


def test_an_exact_grant_is_the_subject_the_person_saw() -> None:
    g = new_grant("custom", "Write /workspace/src/.mcp.json", "allow", "run", run_id="r1",
                  profile="p", decided_by="me")
    assert g.matches("Write /workspace/src/.mcp.json")


def test_every_name_the_sandbox_protects_is_outside_a_folder_grant() -> None:
    """One list (console/policy/protected_names.py) for the sandbox's start and the folder
    grant: h195's first fix copied 13 names by hand, and a dev container's or Continue's config
    made below a granted folder (`src/.devcontainer/devcontainer.json`) stayed covered."""
    from console.policy import protected_names as names
    from console.sandbox import nested, protect

    assert protect.AGENT_CONFIG_DIRS is names.AGENT_CONFIG_DIRS
    assert nested.MADE_ANYWHERE == names.AGENT_CONFIG_YAML + names.HOST_TOOL_CONFIG
    every = {names.GIT_FOLDER, names.HUSKY, *names.OWN, *names.AGENT_CONFIG_DIRS,
             *names.AGENT_CONFIG_FILES, *names.NESTED_AGENT_CONFIG, *names.AGENT_CONFIG_YAML,
             *names.HOST_TOOL_CONFIG}
    covered = [n for n in sorted(every) if grant().matches(f"Write /workspace/src/{n}/x")
               or grant().matches(f"Write /workspace/src/{n.upper()}")]
    assert covered == [], covered
