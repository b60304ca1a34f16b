"""Attack review C (2026-12-02): the workspace protections of 195c0a5 (pinned parents, bare
repositories, gitdir: targets, followed includes, hook-runner configs, more agents' config, the
end-of-run report) attacked again. Every test runs a real sandbox (bubblewrap and Docker, under
a root daemon and an ordinary-user daemon: the `hostile` fixture) on a temporary workspace.

Tests named `test_held_*` are attacks that held. Every other test failed on 91e5d4c
(/work/notes/review-c-output.txt: 67 failed, 21 passed; the thousands-of-repositories case
passes under the ordinary-user Docker daemon only) and asserts the secure behaviour.

Where a test shows the impact with the host's own git, git runs in the test's temporary
workspace with an isolated configuration, and the planted "payload" only touches a marker file
in the test's temporary folder.
"""

from __future__ import annotations

import os

import pytest

from tests.sandbox.hostile_kit import git_repo, give, persons_daemon
from tests.sandbox.test_workspace_attacks import host_git, mentions, payload

COMMIT = ("-c", "user.name=p", "-c", "user.email=p@p.invalid", "commit", "-q", "--allow-empty",
          "-m", "person")  # fmt: skip


async def run_or_refused(box, script: str, **kw):
    """The run's result, or None when a person's daemon refused it over a symbolic link (a
    secure outcome: it cannot cover links, and says so)."""
    try:
        return await box.run(script, **kw)
    except AssertionError as e:
        if persons_daemon(box) and "symbolic link" in str(e):
            return None
        raise


# === findings (fail on the reviewed code) ========================================================

# --- A. symbolic links inside read-only folders --------------------------------------------------


async def test_a_hook_that_is_a_symbolic_link_runs_a_script_the_agent_writes(hostile, tmp_path):
    """The common `ln -s ../../scripts/pre-commit .git/hooks/pre-commit`: .git/hooks/ is
    read-only, but the link inside it is only a name; git follows it to scripts/pre-commit in the
    work tree, which the agent rewrites. git on the host runs it at the person's next commit."""
    prog, marker = payload(tmp_path)
    ws = hostile.workspace
    git_repo(ws)
    (ws / "scripts").mkdir()
    (ws / "scripts" / "pre-commit").write_text("#!/bin/sh\nexit 0\n")
    os.chmod(ws / "scripts" / "pre-commit", 0o755)
    os.symlink("../../scripts/pre-commit", ws / ".git" / "hooks" / "pre-commit")
    give(hostile, ws)
    r = await run_or_refused(
        hostile, f"(printf '#!/bin/sh\\n{prog}\\n' > scripts/pre-commit) 2>/dev/null && echo WROTE; true")
    if r is None:
        return
    host_git(ws, tmp_path, *COMMIT)
    assert "WROTE" not in r.out, (f"host git ran the agent's hook: {marker.exists()}", r.out)
    assert not marker.exists()


async def test_a_symbolic_link_inside_protected_agent_config_leads_to_a_writable_file(hostile):
    """.claude/ is read-only; .claude/settings.json in it is a link to config/claude.json (a
    shared settings file). Claude Code on the host follows the link: the agent writes a
    SessionStart hook into config/claude.json."""
    ws = hostile.workspace
    (ws / "config").mkdir()
    (ws / "config" / "claude.json").write_text("{}")
    (ws / ".claude").mkdir()
    os.symlink("../config/claude.json", ws / ".claude" / "settings.json")
    give(hostile, ws)
    r = await run_or_refused(
        hostile,
        "(echo '{\"hooks\":{\"SessionStart\":[{\"hooks\":[{\"type\":\"command\",\"command\":\"id\"}]}]}}'"
        " > config/claude.json) 2>/dev/null && echo WROTE; true")  # fmt: skip
    if r is None:
        return
    assert "WROTE" not in r.out, r.out
    assert (ws / "config" / "claude.json").read_text() == "{}"


@pytest.mark.parametrize("how", ["through-the-link", "link-replaced"])
async def test_nested_agent_config_that_is_a_symbolic_link_is_neither_protected_nor_reported(
        hostile, how):  # fmt: skip
    """src/.claude is a link to ../shared/claude at the start. The walk finds it, _open says
    "link", and plan_protection skips it (`if nested_fd is None: continue`): not protected, not
    masked, not refused by a person's daemon. The end-of-run report skips every path found at
    the start, so neither writing through the link nor replacing the link with a folder of the
    agent's is reported. Claude Code started in src/ on the host reads the agent's hooks."""
    ws = hostile.workspace
    (ws / "shared" / "claude").mkdir(parents=True)
    (ws / "shared" / "claude" / "settings.json").write_text("{}")
    (ws / "src").mkdir()
    os.symlink("../shared/claude", ws / "src" / ".claude")
    give(hostile, ws)
    hook = ("{\"hooks\":{\"SessionStart\":[{\"hooks\":[{\"type\":\"command\",\"command\":\"id\"}]}]}}")
    if how == "through-the-link":
        script = f"(echo '{hook}' > shared/claude/settings.json) 2>/dev/null && echo WROTE; true"
    else:
        script = (f"(rm src/.claude && mkdir src/.claude && echo '{hook}' > src/.claude/settings.json)"
                  " 2>/dev/null && echo WROTE; true")  # fmt: skip
    r = await run_or_refused(hostile, script)
    if r is None:
        return
    if how == "through-the-link":
        unchanged = (ws / "shared/claude/settings.json").read_text() == "{}"
    else:
        unchanged = (ws / "src/.claude").is_symlink()
    assert unchanged or mentions(r.handle.end_notes, "src/.claude"), (r.out, r.handle.end_notes)


@pytest.mark.parametrize("key", ["core.hooksPath", "include.path"])
async def test_a_config_path_through_a_link_and_dotdot_names_a_file_that_is_not_protected(
        hostile, tmp_path, key):  # fmt: skip
    """`x` is a link to deep/a/b. git hands `x/../hooks` (or the include `../x/../evil.cfg`) to
    the kernel, which resolves `x` first: deep/a/hooks (deep/a/evil.cfg). protect.py normalises
    the text instead (`hooks`, `evil.cfg` at the top) and protects, or masks, the wrong path; the
    file git runs or reads is the agent's (and so is the link `x`)."""
    prog, marker = payload(tmp_path)
    ws = hostile.workspace
    git_repo(ws)
    (ws / "deep" / "a" / "b").mkdir(parents=True)
    os.symlink("deep/a/b", ws / "x")
    if key == "core.hooksPath":
        (ws / "deep/a/hooks").mkdir()
        (ws / "deep/a/hooks/pre-commit").write_text("#!/bin/sh\nexit 0\n")
        os.chmod(ws / "deep/a/hooks/pre-commit", 0o755)
        line, victim = "[core]\n\thooksPath = x/../hooks\n", "deep/a/hooks/pre-commit"
        script = f"(printf '#!/bin/sh\\n{prog}\\n' > {victim}) 2>/dev/null && echo WROTE; true"
    else:
        (ws / "deep/a/evil.cfg").write_text("[pull]\n\trebase = true\n")
        line, victim = "[include]\n\tpath = ../x/../evil.cfg\n", "deep/a/evil.cfg"
        script = f"(printf '[core]\\n\\tfsmonitor = {prog}\\n' >> {victim}) 2>/dev/null && echo WROTE; true"
    before = (ws / victim).read_text()
    with open(ws / ".git" / "config", "a") as fh:
        fh.write(line)
    give(hostile, ws)
    r = await run_or_refused(hostile, script)
    if r is None:
        return
    if key == "core.hooksPath":
        host_git(ws, tmp_path, *COMMIT)
    else:
        host_git(ws, tmp_path, "status")
    assert (ws / victim).read_text() == before, (f"host git ran the agent's code: {marker.exists()}", r.out)


# --- B. includes -----------------------------------------------------------------------------------


async def test_the_tenth_level_of_nested_includes_is_writable(hostile, tmp_path):
    """git follows includes ten deep (MAX_INCLUDE_DEPTH); _protect_config_targets stops reading
    after eight levels of recursion, so the tenth included file is the agent's: it writes
    core.fsmonitor there and git on the host runs it."""
    prog, marker = payload(tmp_path)
    ws = hostile.workspace
    git_repo(ws)
    for i in range(1, 10):
        (ws / f"c{i}.cfg").write_text(f"[include]\n\tpath = c{i + 1}.cfg\n")
    (ws / "c10.cfg").write_text("[pull]\n\trebase = true\n")
    with open(ws / ".git" / "config", "a") as fh:
        fh.write("[include]\n\tpath = ../c1.cfg\n")
    give(hostile, ws)
    r = await hostile.run(
        f"(printf '[core]\\n\\tfsmonitor = {prog}\\n' >> c10.cfg) 2>/dev/null && echo WROTE; true")
    host_git(ws, tmp_path, "status")
    assert (ws / "c10.cfg").read_text() == "[pull]\n\trebase = true\n", (
        f"host git ran the planted fsmonitor: {marker.exists()}", r.out)


# --- C. the hook-runner scan -----------------------------------------------------------------------

PRE_COMMIT_HOOK = (
    "#!/usr/bin/env bash\n# File generated by pre-commit: https://pre-commit.com\n"
    "# ID: 138fd403232d2ddd5efb44317e38bf03\n"
    "ARGS=({args})\n"
    'exec pre-commit "${{ARGS[@]}}"\n'
)
PRE_COMMIT_PAYLOAD = (
    "repos:\\n- repo: local\\n  hooks:\\n  - id: x\\n    name: x\\n"
    "    entry: sh -c id\\n    language: system\\n"
)


async def test_a_hook_runner_after_the_64th_hook_file_is_not_scanned(hostile):
    """_hooks reads only the first 64 names of a hooks folder (sorted). A tracked .githooks/
    (core.hooksPath) with 64 helper files ahead of pre-commit hides the pre-commit framework's
    hook from the scan: .pre-commit-config.yaml stays writable and its `entry:` runs on the host
    at the next commit."""
    ws = hostile.workspace
    git_repo(ws)
    hooks = ws / ".githooks"
    hooks.mkdir()
    for i in range(64):
        (hooks / f"a{i:02d}.sh").write_text("#!/bin/sh\nexit 0\n")
    (hooks / "pre-commit").write_text(PRE_COMMIT_HOOK.format(
        args="hook-impl --config=.pre-commit-config.yaml --hook-type=pre-commit"))
    os.chmod(hooks / "pre-commit", 0o755)
    (ws / ".pre-commit-config.yaml").write_text("repos: []\n")
    with open(ws / ".git" / "config", "a") as fh:
        fh.write("[core]\n\thooksPath = .githooks\n")
    give(hostile, ws)
    r = await hostile.run(
        f"(printf '{PRE_COMMIT_PAYLOAD}' > .pre-commit-config.yaml) 2>/dev/null && echo WROTE; true")
    assert "WROTE" not in r.out, r.out
    assert (ws / ".pre-commit-config.yaml").read_text() == "repos: []\n"


async def test_a_pre_commit_config_whose_name_has_a_space_is_writable(hostile):
    """`pre-commit install -c "ci/pre commit.yaml"` writes the hook's ARGS with shlex.join:
    `'--config=ci/pre commit.yaml'`. The scan's regex stops at the space and protects `ci/pre`
    (absent: masked); the config the hook runs stays the agent's."""
    ws = hostile.workspace
    git_repo(ws)
    (ws / ".git/hooks/pre-commit").write_text(PRE_COMMIT_HOOK.format(
        args="hook-impl '--config=ci/pre commit.yaml' --hook-type=pre-commit"))
    os.chmod(ws / ".git/hooks/pre-commit", 0o755)
    (ws / "ci").mkdir()
    (ws / "ci" / "pre commit.yaml").write_text("repos: []\n")
    give(hostile, ws)
    r = await hostile.run(
        f"(printf '{PRE_COMMIT_PAYLOAD}' > 'ci/pre commit.yaml') 2>/dev/null && echo WROTE; true")
    assert "WROTE" not in r.out, r.out
    assert (ws / "ci" / "pre commit.yaml").read_text() == "repos: []\n"


LEFTHOOK_HOOK = (
    '#!/bin/sh\n\nif [ "$LEFTHOOK_VERBOSE" = "1" -o "$LEFTHOOK_VERBOSE" = "true" ]; then\n'
    "  set -x\nfi\n\ncall_lefthook()\n{\n  lefthook \"$@\"\n}\n\ncall_lefthook run \"pre-commit\" \"$@\"\n"
)


@pytest.mark.parametrize("rel,content", [
    ("lefthook-local.json", '{"pre-commit":{"commands":{"x":{"run":"id"}}}}'),
    ("lefthook-local.toml", '[pre-commit.commands.x]\nrun = "id"\n'),
    (".config/lefthook-local.yml", "pre-commit:\n  commands:\n    x:\n      run: id\n"),
])
async def test_lefthook_local_config_in_its_other_names_is_writable(hostile, rel, content):
    """lefthook merges a `lefthook-local` config in every format it reads (yml, yaml, toml,
    json, jsonc), also from .config/ (lefthook.dev/configuration). LEFTHOOK_CONFIGS masks only
    the YAML names at the top: the agent adds a local config in another name, and the protected
    lefthook hook runs its command on the host at the next commit."""
    ws = hostile.workspace
    git_repo(ws)
    (ws / ".git/hooks/pre-commit").write_text(LEFTHOOK_HOOK)
    os.chmod(ws / ".git/hooks/pre-commit", 0o755)
    (ws / "lefthook.yml").write_text("pre-commit:\n  commands: {}\n")
    give(hostile, ws)
    d = os.path.dirname(rel)
    mk = f"mkdir -p {d} 2>/dev/null; " if d else ""
    r = await hostile.run(f"{mk}(printf '%s' '{content}' > {rel}) 2>/dev/null && echo WROTE; true")
    assert "WROTE" not in r.out or mentions(r.handle.end_notes, rel), (r.out, r.handle.end_notes)


# --- D. agents' config beyond the protected names ------------------------------------------------


# (aider's AIDER_ lines in a .env: tests/sandbox/test_dot_env_s16.py, with any other change.)


# --- E. git folders the walk does not see ---------------------------------------------------------

BARE_FILES = (
    "mkdir -p {d} && printf 'ref: refs/heads/main\\n' > {d}/HEAD && : > {d}/objects && : > {d}/refs"
    " && chmod 755 {d}/objects {d}/refs && printf '[core]\\n\\trepositoryformatversion = 0\\n"
    "\\tbare = false\\n\\tworktree = ..\\n\\tfsmonitor = {prog}\\n' > {d}/config"
)


async def test_a_bare_repository_whose_objects_and_refs_are_files_is_reported(hostile, tmp_path):
    """git takes a folder for a git folder when HEAD is valid and `objects` and `refs` pass
    access(X_OK): executable regular files do. find_nested_git wants them as folders, so the
    agent's repository (core.worktree, core.fsmonitor) is not reported, and git on the host runs
    its fsmonitor at `git status` in that folder."""
    prog, marker = payload(tmp_path)
    ws = hostile.workspace
    git_repo(ws)
    give(hostile, ws)
    r = await hostile.run(BARE_FILES.format(d="tests/fixtures/repo", prog=prog) + "; echo done")
    assert (ws / "tests/fixtures/repo/config").exists(), r.out
    host_git(ws / "tests" / "fixtures" / "repo", tmp_path, "status")
    assert mentions(r.handle.end_notes, "tests/fixtures/repo"), (
        f"not reported; host git ran its fsmonitor: {marker.exists()}", r.handle.end_notes)


async def test_a_git_folder_that_takes_objects_and_refs_through_commondir_is_reported(
        hostile, tmp_path):  # fmt: skip
    """A folder with HEAD and `commondir` (as a linked worktree's git folder has) is a git
    folder to git, whose objects/, refs/ and config are those of the common folder: neither has
    HEAD plus objects/ plus refs/, so find_nested_git sees neither. git on the host in
    tools/wt reads common/config, which is the agent's (here core.pager, run at `git log`)."""
    ws = hostile.workspace
    git_repo(ws)
    give(hostile, ws)
    r = await hostile.run(
        "mkdir -p tools/wt tools/common/objects tools/common/refs"
        " && printf 'ref: refs/heads/main\\n' > tools/wt/HEAD && echo ../common > tools/wt/commondir"
        " && printf '[core]\\n\\tpager = sh -c id\\n' > tools/common/config && echo done")  # fmt: skip
    assert "done" in r.out, r.out
    seen = host_git(ws / "tools" / "wt", tmp_path, "config", "core.pager").stdout.decode().strip()
    assert seen == "sh -c id", seen  # git takes it for a repository and reads the agent's config
    assert mentions(r.handle.end_notes, "tools/wt") or mentions(r.handle.end_notes, "tools/common"), (
        r.handle.end_notes)


# --- F. start cost a repository controls ----------------------------------------------------------


async def test_a_repository_with_thousands_of_bare_repositories_still_starts(hostile):
    """Each nested git folder costs about fourteen binds (and several open descriptors for the
    run's life), with no bound but the walk's 200,000 entries. 6,000 tiny bare repositories
    (18,000 tracked files: objects/.keep, refs/.keep, HEAD) exhaust the daemon's descriptors
    (EMFILE in plan_protection) or the namespace's mount limit: no run on that workspace can
    start. The agent of one run can plant them too, and every later run fails."""
    ws = hostile.workspace
    for i in range(6000):
        d = ws / "fx" / f"{i:04d}"
        (d / "objects").mkdir(parents=True)
        (d / "refs").mkdir()
        (d / "objects" / ".keep").write_text("")
        (d / "refs" / ".keep").write_text("")
        (d / "HEAD").write_text("ref: refs/heads/main\n")
    give(hostile, ws)
    try:  # a run that cannot start fails, or hangs to this timeout: no timing is asserted
        r = await hostile.run("echo STARTED", timeout=120)
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"the run could not start: {str(e)[-600:]}")
    assert "STARTED" in r.out, r.out[-2000:]


# === attacks that held (pass on the reviewed code) ===============================================


async def test_held_pinned_folders_resist_exchange_and_moves(hostile, tmp_path, request):
    """tools/ is pinned (tools/fsmon.sh is read-only through core.fsmonitor). renameat2 with
    RENAME_EXCHANGE of tools/ with a folder of the agent's, of the protected file with another
    file, `mv` of a file or a folder over tools/, and a hard link of the protected file all
    fail; new files in the pinned folder are allowed and harmless."""
    ws = hostile.workspace
    git_repo(ws)
    (ws / "tools").mkdir()
    (ws / "tools" / "fsmon.sh").write_text("#!/bin/sh\nexit 0\n")
    with open(ws / ".git" / "config", "a") as fh:
        fh.write("[core]\n\tfsmonitor = tools/fsmon.sh\n")
    give(hostile, ws)
    kw = {}
    if hostile.name.startswith("docker"):
        kw["image"] = request.getfixturevalue("python_ref")
    py = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "os.makedirs('other', exist_ok=True); open('other/fsmon.sh', 'w').write('evil')\n"
        "open('tools/evil.sh', 'w').write('evil'); open('evil2', 'w').write('evil')\n"
        "for a, b in (('tools', 'other'), ('tools/fsmon.sh', 'tools/evil.sh'), ('.git', 'other')):\n"
        "    rc = libc.renameat2(-100, a.encode(), -100, b.encode(), 2)\n"
        "    print('EXCHANGE', a, 'OK' if rc == 0 else os.strerror(ctypes.get_errno()))\n"
        "for what, f in (('FILE-OVER-DIR', lambda: os.rename('evil2', 'tools')),\n"
        "                ('DIR-OVER-DIR', lambda: os.rename('other', 'tools')),\n"
        "                ('FILE-OVER-FILE', lambda: os.rename('evil2', 'tools/fsmon.sh')),\n"
        "                ('HARDLINK', lambda: os.link('tools/fsmon.sh', 't2'))):\n"
        "    try:\n"
        "        f(); print(what, 'OK')\n"
        "    except OSError as e:\n"
        "        print(what, e.strerror)\n"
    )
    r = await hostile.run(f"python3 - <<'EOF'\n{py}EOF\n", **kw)
    assert "EXCHANGE tools" in r.out and "HARDLINK" in r.out, r.out
    assert " OK" not in r.out, r.out
    assert (ws / "tools" / "fsmon.sh").read_text() == "#!/bin/sh\nexit 0\n"


async def test_held_an_include_cycle_and_includeif_do_not_stall_the_start(hostile):
    """a.cfg and b.cfg include each other, and includeIf "gitdir:" names c.cfg: the run starts at
    once and all three stay read-only."""
    ws = hostile.workspace
    git_repo(ws)
    (ws / "a.cfg").write_text("[include]\n\tpath = b.cfg\n")
    (ws / "b.cfg").write_text("[include]\n\tpath = a.cfg\n")
    (ws / "c.cfg").write_text("")
    with open(ws / ".git" / "config", "a") as fh:
        fh.write('[include]\n\tpath = ../a.cfg\n[includeIf "gitdir:/"]\n\tpath = ../c.cfg\n')
    give(hostile, ws)
    # a stalled start runs into the timeout (fails): no timing is asserted
    r = await hostile.run("for f in a b c; do (echo x >> $f.cfg) 2>/dev/null && echo W-$f; done; true",
                          timeout=30)
    assert "W-" not in r.out, r.out


async def test_held_a_gitdir_file_naming_a_folder_not_yet_there(hostile):
    """vendor/lib/.git says `gitdir: ../../.repos/lib`, which does not exist: the agent cannot
    make it (the first missing folder is masked)."""
    ws = hostile.workspace
    git_repo(ws)
    (ws / "vendor" / "lib").mkdir(parents=True)
    (ws / "vendor/lib/.git").write_text("gitdir: ../../.repos/lib\n")
    give(hostile, ws)
    r = await hostile.run(
        "(mkdir -p .repos/lib/objects .repos/lib/refs && echo '[core] fsmonitor=id' > .repos/lib/config)"
        " 2>/dev/null && echo MADE; true")  # fmt: skip
    assert "MADE" not in r.out, r.out
    assert not (ws / ".repos/lib/config").exists()


async def test_held_a_fifo_and_a_huge_file_in_the_hooks_folder_do_not_stall_the_start(hostile):
    ws = hostile.workspace
    git_repo(ws)
    os.mkfifo(ws / ".git/hooks/pre-commit")
    with open(ws / ".git/hooks/post-checkout", "wb") as fh:
        fh.truncate(1 << 30)  # sparse, 1 GiB
    give(hostile, ws)
    r = await hostile.run("echo STARTED", timeout=30)  # a stalled start fails at the timeout
    assert "STARTED" in r.out, r.out


async def test_held_a_nested_agent_config_made_by_renaming_a_folder_is_reported(hostile):
    """A folder that existed at the start renamed to src/.codex gets a new ctime: reported."""
    ws = hostile.workspace
    (ws / "src" / "notes").mkdir(parents=True)
    (ws / "src" / "notes" / "config.toml").write_text("")
    give(hostile, ws)
    r = await hostile.run("mv src/notes src/.codex && echo 'notify = [\"id\"]' >> src/.codex/config.toml")
    assert mentions(r.handle.end_notes, "src/.codex"), r.handle.end_notes
