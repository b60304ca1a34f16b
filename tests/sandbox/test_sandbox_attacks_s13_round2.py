"""Attack review s13a round 2 (session 13): the fix for protected files with a second name (hard
links: 3237d8b, e8f6b1c) attacked, and other ways to change a file a host tool trusts while the
run's notes stay silent. Every sandbox test runs a real sandbox (bubblewrap and Docker, under a
root daemon and an ordinary-user daemon: the `hostile` fixture), as test_sandbox_attacks_s13.py.

Each test failed on 16d73ea (/work/notes/review-s13a2-before.txt) and asserts the secure
behaviour: a protected file is either not changed, or its change is in the run's end notes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest

from tests.sandbox.hostile_kit import git_repo, give
from tests.sandbox.test_workspace_attacks import host_git, mentions, payload
from tests.sandbox.test_workspace_attacks_2 import COMMIT

NEW_REPO = ("mkdir -p src/.git/objects src/.git/refs docs && echo 'ref: refs/heads/main' > "
            "src/.git/HEAD && printf '[core]\\n\\trepositoryformatversion = 0\\n' > "
            "src/.git/config")  # fmt: skip


def _changed_or_reported(ws, rel: str, before: str, notes: list[str], out: str) -> None:
    changed = (ws / rel).read_text() != before
    assert not changed or mentions(notes, rel.rsplit("/", 1)[0]), (
        f"{rel} rewritten, and the run's end notes do not say so", notes, out)


# --- A. a second name the look for other names cannot reach -------------------------------------


async def test_a_hard_link_below_a_path_longer_than_path_max_is_never_found(hostile, tmp_path):
    """Run 1 writes src/.git (harmless, reported, kept) and a second name of its config in a
    folder nested so deep that its path from the workspace passes PATH_MAX (4096). find_aliases
    opens each folder by its whole path from the root: openat2 fails with ENAMETOOLONG and the
    folder is skipped in silence (the nested-repository walk, which goes folder by folder, sees
    it fine, so no note says anything was missed). Run 2 rewrites the config through it."""
    ws = hostile.workspace
    give(hostile, ws)
    part = "d" * 250
    # Built from the bottom up (mkdir, then move the chain into it): every call names a short
    # path, as a shell's `cd` into the depth would not.
    r1 = await hostile.run(f"{NEW_REPO} && mkdir a && ln src/.git/config a/c && for i in "
                           f"$(seq 18); do mkdir t && mv a t/{part} && mv t a || exit 1; done && "
                           "echo MADE")  # fmt: skip
    assert "MADE" in r1.out, r1.out
    before = (ws / "src/.git/config").read_text()
    r2 = await hostile.run(f"for i in $(seq 18); do mv a x && mv x/{part} a && rmdir x || break;"
                           " done; (printf '\\tfsmonitor = id\\n' >> a/c) 2>/dev/null && "
                           "echo WROTE; true")  # fmt: skip
    # Not bound (a bind would name the path): watched instead, so a change must be reported.
    _changed_or_reported(ws, "src/.git/config", before, r2.handle.end_notes, r2.out)


async def test_a_hard_link_in_a_folder_the_daemon_cannot_open_is_skipped_silently(
        hostile, tmp_path):  # fmt: skip
    """The same with the second name in a folder the agent made unreadable (chmod 0): a daemon
    run by a person cannot open it, find_aliases skips it without a word, and the agent opens it
    again in run 2 (it owns it) to rewrite the config. A root daemon reads every folder."""
    ws = hostile.workspace
    give(hostile, ws)
    r1 = await hostile.run(f"{NEW_REPO} && mkdir hid && ln src/.git/config hid/c && "
                           "chmod 0 hid && echo MADE")  # fmt: skip
    assert "MADE" in r1.out, r1.out
    before = (ws / "src/.git/config").read_text()
    r2 = await hostile.run("chmod 700 hid; (printf '\\tfsmonitor = id\\n' >> hid/c) 2>/dev/null"
                           " && echo WROTE; chmod 755 hid; true")  # fmt: skip
    # The folder cannot be looked into: the config is watched, so a change must be reported.
    _changed_or_reported(ws, "src/.git/config", before, r2.handle.end_notes, r2.out)


async def test_a_script_below_an_objects_folder_of_agent_config_is_rewritten_unreported(
        hostile, tmp_path):  # fmt: skip
    """linked_files skips every folder named `objects` (meant for a submodule's objects), in any
    protected folder. Run 1 writes sub/.claude (reported, kept: its settings run the harmless
    .claude/objects/fmt.sh after each edit) and a second name for that script, tools/fmt.sh. In
    run 2 sub/.claude is read-only, but the script is rewritten through tools/fmt.sh, and Claude
    Code started in sub/ on the host runs it; nothing is reported."""
    ws = hostile.workspace
    give(hostile, ws)
    settings = ('{"hooks":{"PostToolUse":[{"matcher":"Edit","hooks":[{"type":"command",'
                '"command":".claude/objects/fmt.sh"}]}]}}')  # fmt: skip
    r1 = await hostile.run(
        f"mkdir -p sub/.claude/objects tools && printf '%s' '{settings}' > "
        "sub/.claude/settings.json && printf '#!/bin/sh\\nexit 0\\n' > sub/.claude/objects/fmt.sh"
        " && chmod +x sub/.claude/objects/fmt.sh && ln sub/.claude/objects/fmt.sh tools/fmt.sh"
        " && echo MADE")
    assert "MADE" in r1.out, r1.out
    assert mentions(r1.handle.end_notes, "sub/.claude"), r1.handle.end_notes
    before = (ws / "sub/.claude/objects/fmt.sh").read_text()
    r2 = await hostile.run("(printf 'id\\n' >> tools/fmt.sh) 2>/dev/null && echo WROTE; true")
    changed = (ws / "sub/.claude/objects/fmt.sh").read_text() != before
    assert not changed or mentions(r2.handle.end_notes, "sub/.claude"), (
        "rewritten, unreported", r2.handle.end_notes)
    assert "WROTE" not in r2.out, r2.out


async def test_a_protected_folder_cut_short_leaves_its_linked_script_unwatched(hostile, tmp_path):
    """A person's .claude/commands holds more than 2,000 files, and a script of theirs under it
    (.claude/commands/bin/lint.sh, which a hook in settings.json runs) has a second name in the
    work tree, tools/lint.sh. The look for linked files in .claude stops at 2,000 entries; the
    start notes say so, but the script is not watched: the agent rewrites it through
    tools/lint.sh and the end notes are silent."""
    from console.sandbox.aliases import DIR_ENTRIES_MAX

    ws = hostile.workspace
    cmds = ws / ".claude" / "commands"
    (cmds / "bin").mkdir(parents=True)
    for i in range(DIR_ENTRIES_MAX + 5):
        (cmds / f"c{i}.md").write_text("say hello\n")
    (cmds / "bin" / "lint.sh").write_text("#!/bin/sh\nexit 0\n")
    (ws / "tools").mkdir()
    os.link(cmds / "bin" / "lint.sh", ws / "tools" / "lint.sh")
    give(hostile, ws)
    r = await hostile.run("(printf 'id\\n' >> tools/lint.sh) 2>/dev/null && echo WROTE; true")
    changed = "id" in (cmds / "bin" / "lint.sh").read_text()
    # Past the bound the script cannot be bound: its change must be reported at the end.
    assert not changed or mentions(r.handle.end_notes, ".claude/commands/bin/lint.sh"), (
        "rewritten, unreported", r.handle.notes, r.handle.end_notes)


# --- B. a second name made after the plan: a sibling run -----------------------------------------


async def test_a_second_name_made_by_a_sibling_run_after_the_plan_goes_unreported(
        hostile, tmp_path):  # fmt: skip
    """Two runs share a workspace. Run A's agent wrote src/.git (new in A, so writable there;
    A's end reports it and the person finds it harmless). Run B starts meanwhile and binds
    src/.git/config read-only: one link, so no other name to look for. Then A's agent gives the
    config a second name, docs/x (played here by the host, as the workspace's owner: A's agent
    could). B's agent appends core.fsmonitor through docs/x. B found src/.git at its start, so
    its end does not look again: silent, and git on the host runs the program. (A person's
    daemon runs no second Docker run in a workspace, but any host process can make the link.)"""
    prog, marker = payload(tmp_path)
    ws = hostile.workspace
    (ws / "src/.git/objects").mkdir(parents=True)
    (ws / "src/.git/refs").mkdir()
    (ws / "docs").mkdir()
    (ws / "src/.git/HEAD").write_text("ref: refs/heads/main\n")
    (ws / "src/.git/config").write_text("[core]\n\trepositoryformatversion = 0\n")
    give(hostile, ws)
    before = (ws / "src/.git/config").read_text()
    run_b = asyncio.ensure_future(hostile.run(
        "touch started; i=0; while [ ! -e docs/x ] && [ $i -lt 300 ]; do sleep 0.1; "
        f"i=$((i+1)); done; (printf '\\tfsmonitor = {prog}\\n' >> docs/x) 2>/dev/null && "
        "echo WROTE; true"))
    for _ in range(600):
        if (ws / "started").exists() or run_b.done():
            break
        await asyncio.sleep(0.1)
    os.link(ws / "src/.git/config", ws / "docs/x")
    give(hostile, ws / "docs")
    r = await run_b
    host_git(ws / "src", tmp_path, "status")
    changed = (ws / "src/.git/config").read_text() != before
    assert not changed or mentions(r.handle.end_notes, "src/.git"), (
        "rewritten, unreported", marker.exists(), r.handle.end_notes, r.out)


# --- C. nested repositories past the bound: watched, but not their hooks' contents -------------


async def test_an_existing_hook_of_a_nested_repository_past_the_bound_is_rewritten_unreported(
        hostile, tmp_path):  # fmt: skip
    """A workspace of 70 checkouts (a `repo` or vendoring layout), each with the person's own
    commit hook installed (Gerrit's commit-msg, pre-commit's pre-commit). The first 64 are
    protected; the rest are "watched", and the start notes promise that a change to their
    config or hooks is reported. The watch compares the ctime of the hooks folder, which a
    rewrite in place of an existing hook does not change: the agent rewrites it, nothing is
    reported, and the person's next commit there runs the agent's program."""
    prog, marker = payload(tmp_path)
    ws = hostile.workspace
    ws.mkdir(exist_ok=True)
    for i in range(70):
        repo = ws / f"r{i:02}"
        git_repo(repo)
        hook = repo / ".git" / "hooks" / "pre-commit"
        hook.write_text("#!/bin/sh\nexit 0\n")
        os.chmod(hook, 0o755)
    give(hostile, ws)
    r = await hostile.run(
        "for f in r*/.git/hooks/pre-commit; do (printf '#!/bin/sh\\n%s\\n' "
        f"'{prog}' > \"$f\") 2>/dev/null && echo \"WROTE $f\"; done; true", timeout=120)
    assert any("nested git repositories" in n for n in r.handle.notes), r.handle.notes
    written = [w.split()[1].split("/")[0] for w in r.out.splitlines() if w.startswith("WROTE ")]
    assert written, ("the test needs repositories past the bound", r.out)
    unreported = [w for w in written if not mentions(r.handle.end_notes, w)]
    if unreported:
        host_git(ws / unreported[0], tmp_path, *COMMIT)
    assert not unreported, ("hooks rewritten, unreported", unreported, marker.exists(),
                            r.handle.end_notes)



# --- the end's look raises no false alarm for what git does in ordinary use ----------------------


def test_committing_in_a_submodule_and_a_watched_repository_is_not_reported(tmp_path):
    """The look at the end (watch.py) passes over what git changes in ordinary use: a commit in
    a submodule (its git folder lies in the read-only .git/modules) and in a nested repository
    past the bound (watched) names no file; a hook rewritten in place in either is named."""
    import shutil
    import time

    from console.sandbox.protect import plan_protection
    from console.sandbox.watch import Budget, changed_read_only, git_folder_changed

    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    ws = tmp_path / "ws"
    git_repo(ws)
    lib = tmp_path / "lib"
    git_repo(lib)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": "/dev/null"}  # fmt: skip
    cfg = ("-c", "safe.directory=*", "-c", "protocol.file.allow=always", "-c", "user.name=t",
           "-c", "user.email=t@t.invalid")  # fmt: skip
    subprocess.run([git, *cfg, "-C", str(ws), "submodule", "add", "-q", str(lib), "lib"],
                   check=True, env=env, capture_output=True)  # fmt: skip
    git_repo(ws / "nested")
    time.sleep(0.05)
    plan = plan_protection(ws)
    try:
        since = time.time()
        time.sleep(0.05)
        for where in (ws / "lib", ws / "nested"):
            (where / "b.txt").write_text("b\n")
            subprocess.run([git, *cfg, "-C", str(where), "add", "b.txt"], check=True, env=env)
            subprocess.run([git, *cfg, "-C", str(where), "commit", "-qm", "b"], check=True,
                           env=env)  # fmt: skip
        ws_fd = os.open(ws, os.O_PATH | os.O_DIRECTORY)
        try:
            assert changed_read_only(plan.binds, since, set(), Budget()) == []
            assert not git_folder_changed(ws_fd, "nested/.git", since, Budget())
            for hooks in (ws / ".git/modules/lib/hooks", ws / "nested/.git/hooks"):
                (hooks / "pre-commit.sample").write_text("#!/bin/sh\n")
            assert sorted(changed_read_only(plan.binds, since, set(), Budget())) == [
                ".git/modules/lib/hooks/pre-commit.sample", "nested/.git/hooks/pre-commit.sample"]
            assert git_folder_changed(ws_fd, "nested/.git", since, Budget())
        finally:
            os.close(ws_fd)
    finally:
        plan.close()
