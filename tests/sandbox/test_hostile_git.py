"""The hostile repository, on both backends, under a root daemon and under an ordinary-user
daemon: git's indirections (config, hooks, gitdir files, submodules, alternates, what config
names) stay read-only, git itself still works, and nested repositories are protected or reported.
Split from test_hostile.py (one class of issue 11 per test, as there)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.sandbox.hostile_kit import git_repo, give

# --- 4. git indirection -------------------------------------------------------------------------


REDIRECTS = (
    ".git/commondir", ".git/config.worktree", ".git/config", ".git/hooks/post-checkout",
    ".git/remotes/origin", ".git/branches/evil",
    ".git/info/attributes", ".git/worktrees/evil/commondir", ".git/modules/evil/config",
    ".git/objects/info/alternates",
)


async def test_git_redirections_are_read_only_and_git_still_works(hostile):
    ws = hostile.workspace
    git_repo(ws)
    give(hostile, ws)
    config_before = (ws / ".git/config").read_text()
    writes = "; ".join(
        f"(mkdir -p $(dirname {p}) && echo '[core] fsmonitor=evil' > {p}) 2>/dev/null "
        f"&& echo WROTE:{p}"
        for p in REDIRECTS
    )
    usable = (
        "echo x > .git/objects/probe && echo OBJECTS-OK; echo y > .git/refs/heads/probe "
        "&& echo REFS-OK; echo z > .git/index.lock && echo LOCK-OK; mv .git/index.lock "
        ".git/index-probe && echo RENAME-OK; echo ref > .git/ORIG_HEAD && echo ORIG-OK;"
        "echo p > .git/packed-refs.lock && echo PACKED-OK; mkdir -p .git/logs/refs && echo LOGS-OK"
    )
    r = await hostile.run(f"{writes}; {usable}; true")
    for p in REDIRECTS:
        assert f"WROTE:{p}" not in r.out, r.out
    assert (ws / ".git/config").read_text() == config_before
    for p in REDIRECTS[:2] + REDIRECTS[4:]:
        assert not (ws / p).exists() or (ws / p).read_text() == "", p
    for ok in ("OBJECTS-OK", "REFS-OK", "LOCK-OK", "RENAME-OK", "ORIG-OK", "PACKED-OK", "LOGS-OK"):
        assert ok in r.out, (ok, r.out)


async def test_git_itself_works_inside_on_the_protected_repository(hostile, request):
    """Masks must not break git: an empty commondir, say, makes every git command fail."""
    kw = {}
    if hostile.name.startswith("docker"):
        kw["image"] = request.getfixturevalue("python_ref")  # carries the host's git
    ws = hostile.workspace
    git_repo(ws)
    give(hostile, ws)
    r = await hostile.run(
        "export HOME=/tmp GIT_CONFIG_NOSYSTEM=1; git config --global safe.directory '*';"
        "git status --short && echo STATUS-OK; echo b > b.txt; git add b.txt &&"
        " git -c user.name=a -c user.email=a@a.invalid commit -qm b && echo COMMIT-OK;"
        "git checkout -qb side && echo BRANCH-OK; git log --oneline | head -3", **kw
    )
    for ok in ("STATUS-OK", "COMMIT-OK", "BRANCH-OK"):
        assert ok in r.out, (ok, r.out)


async def test_masks_show_nothing_new_to_git(hostile, request):
    """An agent's `git add -A` must not commit the masks standing in for absent paths."""
    kw = {}
    if hostile.name.startswith("docker"):
        kw["image"] = request.getfixturevalue("python_ref")
    ws = hostile.workspace
    git_repo(ws)
    give(hostile, ws)
    r = await hostile.run("export HOME=/tmp; git config --global safe.directory '*';"
                          "echo status:; git status --porcelain --untracked-files=all; echo end",
                          **kw)  # fmt: skip
    listed = r.out.split("status:\n", 1)[1].split("end", 1)[0].splitlines()
    assert listed == ["?? a.txt"], r.out  # the test's own untracked file, and nothing else


async def test_host_git_runs_no_planted_code_after_a_run(hostile, tmp_path):
    ws = hostile.workspace
    git_repo(ws)
    give(hostile, ws)
    pwned = tmp_path / "pwned"
    payload = f"#!/bin/sh\ntouch {pwned}\n"
    (tmp_path / "evil.sh").write_text(payload)
    os.chmod(tmp_path / "evil.sh", 0o755)
    await hostile.run(
        f"printf '[core]\\n\\tfsmonitor = {tmp_path}/evil.sh\\n' > planted 2>/dev/null;"
        "mkdir -p planted-git/hooks 2>/dev/null;"
        "(echo ../planted-git > .git/commondir) 2>/dev/null;"
        "(cp planted .git/config.worktree) 2>/dev/null;"
        "(printf '[include]\\n\\tpath = ../planted\\n' >> .git/config) 2>/dev/null; true"
    )
    git = shutil.which("git")
    subprocess.run([git, "-C", str(ws), "-c", "safe.directory=*", "status"], capture_output=True, timeout=30)
    subprocess.run([git, "-C", str(ws), "-c", "safe.directory=*", "-c", "extensions.worktreeConfig=true", "status"],
                   capture_output=True, timeout=30)  # fmt: skip
    assert not pwned.exists()


async def test_gitdir_file_target_inside_the_workspace_is_protected(hostile):
    ws = hostile.workspace
    git_repo(ws)
    (ws / ".git").rename(ws / "realgit")
    (ws / ".git").write_text("gitdir: realgit\n")
    give(hostile, ws)
    r = await hostile.run(
        "(echo 'gitdir: /tmp/evil' > .git) 2>/dev/null && echo WROTE-GITFILE;"
        "(echo '[core] fsmonitor=evil' >> realgit/config) 2>/dev/null && echo WROTE-CONFIG;"
        "(echo x > realgit/hooks/post-checkout) 2>/dev/null && echo WROTE-HOOK;"
        "(echo x > realgit/objects/probe) && echo OBJECTS-OK; true"
    )
    assert "WROTE-" not in r.out, r.out
    assert (ws / ".git").read_text() == "gitdir: realgit\n"
    assert "OBJECTS-OK" in r.out, r.out


async def test_existing_submodule_is_usable_but_its_config_is_not(hostile):
    ws = hostile.workspace
    git_repo(ws)
    mod = ws / ".git" / "modules" / "lib"
    (mod / "objects").mkdir(parents=True)
    (mod / "refs").mkdir()
    (mod / "config").write_text("[core]\n\tworktree = ../../../lib\n")
    (mod / "HEAD").write_text("ref: refs/heads/main\n")
    (ws / "lib").mkdir()
    (ws / "lib" / ".git").write_text("gitdir: ../.git/modules/lib\n")
    (ws / ".gitmodules").write_text('[submodule "lib"]\n\tpath = lib\n\turl = ../lib.invalid\n')
    give(hostile, ws)
    r = await hostile.run(
        "(echo '[core] fsmonitor=evil' >> .git/modules/lib/config) 2>/dev/null && echo W-CONFIG;"
        "(mkdir .git/modules/lib/hooks) 2>/dev/null && echo W-HOOKS;"
        "(echo 'gitdir: ../evil' > lib/.git) 2>/dev/null && echo W-GITFILE;"
        "(mkdir .git/modules/new) 2>/dev/null && echo W-NEWMODULE;"
        "(echo o > .git/modules/lib/objects/probe) && echo MOD-OBJECTS-OK;"
        "(echo l > .git/modules/lib/index.lock) && echo MOD-LOCK-OK; true"
    )
    assert "W-" not in r.out, r.out
    assert "MOD-OBJECTS-OK" in r.out and "MOD-LOCK-OK" in r.out, r.out
    assert (mod / "config").read_text() == "[core]\n\tworktree = ../../../lib\n"


async def test_hooks_path_and_scripts_named_by_git_config_are_read_only(hostile):
    ws = hostile.workspace
    git_repo(ws)
    (ws / ".husky").mkdir()
    (ws / ".husky" / "pre-commit").write_text("#!/bin/sh\nexit 0\n")
    (ws / "tools").mkdir()
    (ws / "tools" / "fsmon.sh").write_text("#!/bin/sh\n")
    (ws / "shared.gitconfig").write_text("")
    (ws / "inline.gitconfig").write_text("")
    with open(ws / ".git" / "config", "a") as fh:
        fh.write("[core]\n\thooksPath = .husky\n\tfsmonitor = tools/fsmon.sh\n"
                 "[include]\n\tPATH = ../shared.gitconfig\n"
                 "[include] path = ../inline.gitconfig\n")  # fmt: skip
    give(hostile, ws)
    r = await hostile.run(
        "for f in .husky/pre-commit .husky/post-checkout tools/fsmon.sh shared.gitconfig "
        "inline.gitconfig; do (echo '#!/bin/sh' > $f) 2>/dev/null && echo WROTE:$f; done; true"
    )
    assert "WROTE:" not in r.out, r.out
    assert (ws / ".husky" / "pre-commit").read_text() == "#!/bin/sh\nexit 0\n"
    assert (ws / "shared.gitconfig").read_text() == "" and (ws / "inline.gitconfig").read_text() == ""


async def test_old_remotes_and_alternates_without_objects_info_are_read_only(hostile):
    ws = hostile.workspace
    git_repo(ws)
    shutil.rmtree(ws / ".git" / "objects" / "info", ignore_errors=True)
    give(hostile, ws)
    r = await hostile.run(
        "(echo /tmp > .git/objects/info/alternates) 2>/dev/null && echo W-ALT;"
        "(mkdir -p .git/remotes && echo 'URL: https://attacker.invalid' > .git/remotes/origin)"
        " 2>/dev/null && echo W-REMOTES;"
        "(mkdir -p .git/branches && echo x > .git/branches/x) 2>/dev/null && echo W-BRANCHES; true"
    )
    assert "W-" not in r.out, r.out
    assert not (ws / ".git/objects/info/alternates").exists() or not (
        ws / ".git/objects/info/alternates").read_text()  # fmt: skip


async def test_a_nested_repository_written_by_the_agent_is_reported(hostile):
    ws = hostile.workspace
    (ws / "vendor" / "old" / ".git").mkdir(parents=True)  # the person's own, from before
    give(hostile, ws)
    r = await hostile.run(
        "mkdir -p src/.git && printf '[core]\\n\\tfsmonitor = id\\n' > src/.git/config;"
        "printf 'ref: refs/heads/main\\n' > src/.git/HEAD"
    )
    assert (ws / "src" / ".git" / "config").exists(), r.out
    assert any("src/.git" in n for n in r.handle.end_notes), r.handle.end_notes
    assert not any("vendor/old" in n for n in r.handle.end_notes), r.handle.end_notes


async def test_a_nested_repository_present_at_the_start_is_protected(hostile):
    """Found by the second attack review: vendor/lib/.git, there before the run, kept a
    writable config that git on the host reads in that folder."""
    ws = hostile.workspace
    git_repo(ws / "vendor" / "lib")
    give(hostile, ws)
    before = (ws / "vendor/lib/.git/config").read_text()
    r = await hostile.run(
        "(printf '[core]\\n\\tfsmonitor = id\\n' >> vendor/lib/.git/config) 2>/dev/null && echo W1;"
        "(mkdir -p vendor/lib/.git/hooks && echo x > vendor/lib/.git/hooks/post-checkout)"
        " 2>/dev/null && echo W2; echo o > vendor/lib/.git/objects/probe && echo OBJ-OK"
    )
    assert "W1" not in r.out.split() and "W2" not in r.out.split(), r.out
    assert "OBJ-OK" in r.out, r.out  # still a usable repository
    assert (ws / "vendor/lib/.git/config").read_text() == before
    assert not any("vendor/lib" in n for n in r.handle.end_notes), r.handle.end_notes


@pytest.mark.parametrize("backend", ["bwrap_box", "docker_box"])
async def test_a_look_cut_short_says_so(request, backend, monkeypatch):
    """Found by the second attack review: past the walk's bound a nested repository went
    unreported, silently. (The bound is this process's, so the in-process backends: the same
    code runs in a person's daemon.)"""
    from console.sandbox import nested

    hostile = request.getfixturevalue(backend)
    ws = hostile.workspace
    many = ws / "many"
    many.mkdir()
    for i in range(300):
        (many / f"f{i}").touch()
    give(hostile, ws)
    monkeypatch.setattr(nested, "NESTED_MAX_ENTRIES", 100)  # a small bound, the same code
    r = await hostile.run("mkdir -p many/sub/.git; echo done")
    assert any("stopped early" in n for n in r.handle.notes + r.handle.end_notes), (
        r.handle.notes, r.handle.end_notes)
