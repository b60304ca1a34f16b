"""Attack review s13a (session 13): the sandbox's integrity, attacked again. Every test runs a
real sandbox (bubblewrap and Docker, under a root daemon and an ordinary-user daemon: the
`hostile` fixture) on a temporary workspace, as tests/sandbox/test_workspace_attacks*.py do.

Each test failed on ffcd629 (/work/notes/review-s13a-before.txt) and asserts the secure
behaviour. Where a test shows the impact with the host's own git, git runs in the test's
temporary workspace with an isolated configuration, and the payload only touches a marker file.
"""

from __future__ import annotations

import os

from tests.sandbox.hostile_kit import git_repo, give
from tests.sandbox.test_workspace_attacks import host_git, payload
from tests.sandbox.test_workspace_attacks_2 import COMMIT

# --- A. a protected file with a second name (a hard link) in the work tree ----------------------


async def test_a_hook_hard_linked_from_the_work_tree_is_rewritten_through_its_other_name(
        hostile, tmp_path):  # fmt: skip
    """`ln scripts/pre-commit .git/hooks/pre-commit` (a hard link, as some hook installers
    make): .git/hooks/ is bound read-only, but scripts/pre-commit is the same inode under a
    writable name. The agent rewrites it, and git on the host runs it at the next commit. (The
    symbolic-link form was fixed in review C; a hard link has no target to protect.)"""
    prog, marker = payload(tmp_path)
    ws = hostile.workspace
    git_repo(ws)
    (ws / "scripts").mkdir()
    (ws / "scripts" / "pre-commit").write_text("#!/bin/sh\nexit 0\n")
    os.chmod(ws / "scripts" / "pre-commit", 0o755)
    os.link(ws / "scripts" / "pre-commit", ws / ".git" / "hooks" / "pre-commit")
    give(hostile, ws)
    r = await hostile.run(
        f"(printf '#!/bin/sh\\n{prog}\\n' > scripts/pre-commit) 2>/dev/null && echo WROTE; true")
    host_git(ws, tmp_path, *COMMIT)
    assert not marker.exists(), ("host git ran the agent's hook", r.out)
    assert "WROTE" not in r.out, r.out


async def test_a_nested_config_hard_linked_in_an_earlier_run_is_rewritten_unreported(
        hostile, tmp_path):  # fmt: skip
    """Run 1 writes src/.git (a harmless config: reported at its end, the person reads it and
    keeps it) and a second name for its config, docs/notes.txt. Run 2 finds src/.git at the
    start and binds its config read-only, but rewrites it through docs/notes.txt; a repository
    protected at the start is not looked at again, so nothing is reported, and git on the host
    runs the agent's core.fsmonitor in src/."""
    prog, marker = payload(tmp_path)
    ws = hostile.workspace
    give(hostile, ws)
    r1 = await hostile.run(
        "mkdir -p src/.git/objects src/.git/refs docs && echo 'ref: refs/heads/main' > "
        "src/.git/HEAD && printf '[core]\\n\\trepositoryformatversion = 0\\n' > src/.git/config"
        " && ln src/.git/config docs/notes.txt && echo MADE")
    assert "MADE" in r1.out, r1.out
    assert any("src/.git" in n for n in r1.handle.end_notes), r1.handle.end_notes
    before = (ws / "src/.git/config").read_text()
    r2 = await hostile.run(
        f"(printf '\\tfsmonitor = {prog}\\n' >> docs/notes.txt) 2>/dev/null && echo WROTE; true")
    changed = (ws / "src/.git/config").read_text() != before
    host_git(ws / "src", tmp_path, "status")
    reported = any("src/.git" in n for n in r2.handle.end_notes)
    assert not changed or reported, ("rewritten, unreported", marker.exists(), r2.out)
    assert "WROTE" not in r2.out, r2.out


async def test_a_hundred_names_for_a_nested_config_still_leave_a_change_reported(
        hostile, tmp_path):  # fmt: skip
    """The same with a hundred second names: binding each one would cost a mount apiece, so
    past a bound the protected file is watched instead and a change to it is reported."""
    ws = hostile.workspace
    give(hostile, ws)
    r1 = await hostile.run(
        "mkdir -p src/.git/objects src/.git/refs docs && echo 'ref: refs/heads/main' > "
        "src/.git/HEAD && printf '[core]\\n\\tbare = false\\n' > src/.git/config && "
        "for i in $(seq 100 199); do ln src/.git/config docs/n$i || exit 1; done; echo MADE")
    assert "MADE" in r1.out, r1.out
    before = (ws / "src/.git/config").read_text()
    r2 = await hostile.run("(printf '\\tfsmonitor = id\\n' >> docs/n199) 2>/dev/null; true")
    changed = (ws / "src/.git/config").read_text() != before
    assert not changed or any("src/.git/config" in n for n in r2.handle.end_notes), (
        "rewritten, unreported", r2.handle.end_notes)


def test_a_protected_folder_too_big_to_look_through_says_so(tmp_path):
    """A read-only folder (.git/hooks) with thousands of files: the look for hard-linked files
    in it stops at a bound, and the run's notes say which folder was not looked through whole
    (not silently)."""
    from console.sandbox.aliases import DIR_ENTRIES_MAX
    from console.sandbox.protect import plan_protection

    ws = tmp_path / "ws"
    git_repo(ws)
    hooks = ws / ".git" / "hooks"
    for i in range(DIR_ENTRIES_MAX + 10):
        (hooks / f"h{i}.sample").write_text("#!/bin/sh\n")
    plan = plan_protection(ws)
    try:
        assert any("first .git/hooks, were not looked through whole" in n for n in plan.notes), plan.notes
    finally:
        plan.close()
    small = tmp_path / "small"
    git_repo(small)
    plan = plan_protection(small)
    try:
        assert not any("not looked through whole" in n for n in plan.notes), plan.notes
    finally:
        plan.close()


def test_the_look_for_hard_links_is_bounded_across_all_protected_folders(tmp_path):
    """A hundred nested .claude folders of 2,000 files each made every start read them all
    (2.8 s, review s13a2). The look now stops at a bound over every folder together, says so,
    and leaves the rest to the end-of-run check (watch.py)."""
    from console.sandbox.aliases import ALL_ENTRIES_MAX, DIR_ENTRIES_MAX
    from console.sandbox.protect import plan_protection

    ws = tmp_path / "ws"
    per = DIR_ENTRIES_MAX - 100
    for i in range(ALL_ENTRIES_MAX // per + 2):
        d = ws / f"p{i}" / ".claude"
        d.mkdir(parents=True)
        for j in range(per):
            (d / f"f{j}").write_text("")
    plan = plan_protection(ws)
    try:
        cut = [n for n in plan.notes if "not looked through whole" in n]
        assert len(cut) == 1 and "(past 2000 entries each or 20000 in all)" in cut[0], plan.notes
    finally:
        plan.close()
