"""A hostile agent and a hostile repository, on both backends, under a root daemon and under an
ordinary-user daemon (a real second user). One test per class of issue 11; each proves from
the host's side what it can (files unchanged, nothing created), not only from exit codes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CANARY = "ph-canary-7f3a9c"


def _owner(box) -> tuple[int, int]:
    st = box.workspace.stat()
    return st.st_uid, st.st_gid


def _give(box, *paths: Path) -> None:
    """Files the test plants belong to the workspace's owner, as a person's checkout would."""
    uid, gid = _owner(box)
    for p in paths:
        for root, dirs, files in os.walk(p) if p.is_dir() and not p.is_symlink() else [(None, [], [])]:
            for n in ([root] if root else []) + [os.path.join(root, x) for x in dirs + files]:
                os.lchown(n, uid, gid)
        os.lchown(p, uid, gid)


def _persons_daemon(box) -> bool:
    return box.name.endswith("-user")


async def _refused_for_a_persons_daemon(box, script: str) -> None:
    """A daemon run by a person cannot cover a protected link: it refuses the run and says
    which link (the agent could otherwise replace the link with a file of its own)."""
    with pytest.raises(AssertionError, match="symbolic link"):
        await box.run(script)


# --- 1. never host uid 0; kernel tunables read-only -------------------------------------------


async def test_agent_is_never_host_root_and_sysctls_are_read_only(hostile):
    r = await hostile.run(
        "echo uid=$(id -u);"
        "test -w /proc/sys/kernel/core_pattern && echo SYSCTL-WRITABLE;"
        # Writes put back the value already there: if the probe gets through, nothing changes.
        "v=$(cat /proc/sys/kernel/panic); (echo $v > /proc/sys/kernel/panic) 2>/dev/null"
        " && echo SYSCTL-WRITTEN;"
        "v=$(cat /proc/sys/vm/swappiness); (echo $v > /proc/sys/vm/swappiness) 2>/dev/null"
        " && echo PANIC-WRITTEN;"
        "test -w /proc/sysrq-trigger && echo SYSRQ-WRITABLE;"
        "test -w /sys/kernel && echo SYS-WRITABLE; true"
    )
    assert "uid=" in r.out, r.out
    # Inside, uid 0 could be a user-namespace root; on the host it must not be 0: the files it
    # writes tell the host's view.
    assert "SYSCTL-WRITABLE" not in r.out and "SYSCTL-WRITTEN" not in r.out, r.out
    assert "PANIC-WRITTEN" not in r.out and "SYSRQ-WRITABLE" not in r.out, r.out
    assert "SYS-WRITABLE" not in r.out, r.out


async def test_files_the_agent_writes_are_the_workspace_owners(hostile):
    r = await hostile.run("echo x > made-inside; id -u")
    made = hostile.workspace / "made-inside"
    assert made.exists(), r.out
    assert (made.stat().st_uid, made.stat().st_gid) == _owner(hostile)


# --- 2. the daemon's environment ---------------------------------------------------------------


async def test_daemon_environment_is_not_visible_to_any_process_inside(hostile, monkeypatch):
    monkeypatch.setenv("PH_DAEMON_SECRET", CANARY)
    r = await hostile.run(
        "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f 2>/dev/null; done;"
        "echo pids: /proc/[0-9]*",
        daemon_env={"PH_DAEMON_SECRET": CANARY},
    )
    assert "pids:" in r.out, r.out
    assert CANARY not in r.out, r.out


# --- 3. protected paths are never followed -----------------------------------------------------


@pytest.mark.parametrize("protected", [".pilothouse.toml", ".git/config", ".mcp.json",
                                       ".claude/settings.json"])
async def test_protected_symlink_is_masked_not_followed(hostile, tmp_path, protected):
    secret = tmp_path / "host-secret"
    secret.write_text(CANARY + "\n")
    os.chmod(secret, 0o644)
    ws = hostile.workspace
    link = ws / protected
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(secret)
    _give(hostile, ws)
    script = f"cat {protected} 2>&1; echo evil > {protected} 2>/dev/null; echo done"
    if _persons_daemon(hostile) and protected != ".claude/settings.json":
        await _refused_for_a_persons_daemon(hostile, script)
        assert secret.read_text() == CANARY + "\n"
        return
    r = await hostile.run(script)
    assert "done" in r.out, r.out  # the run still starts
    assert CANARY not in r.out, r.out
    assert secret.read_text() == CANARY + "\n"
    assert link.is_symlink() and os.readlink(link) == str(secret)  # the link itself untouched
    if protected != ".claude/settings.json":  # inside a protected folder: that folder is bound
        assert any(protected in n and "link" in n for n in r.handle.notes), r.handle.notes


async def test_protected_path_under_a_symlinked_directory_is_masked(hostile, tmp_path):
    outside = tmp_path / "elsewhere-git"
    (outside / "hooks").mkdir(parents=True)
    (outside / "config").write_text(f"[core]\n# {CANARY}\n")
    os.chmod(outside, 0o755)
    os.chmod(outside / "config", 0o644)
    (hostile.workspace / ".git").symlink_to(outside)
    _give(hostile, hostile.workspace)
    script = ("cat .git/config 2>&1; echo '[core] fsmonitor=evil' > .git/config 2>/dev/null;"
              "echo x > .git/hooks/post-checkout 2>/dev/null; echo done")  # fmt: skip
    if _persons_daemon(hostile):
        await _refused_for_a_persons_daemon(hostile, script)
        return
    r = await hostile.run(script)
    assert "done" in r.out, r.out
    assert CANARY not in r.out, r.out
    assert "fsmonitor" not in (outside / "config").read_text()
    assert not (outside / "hooks" / "post-checkout").exists()


async def test_a_deep_link_does_not_block_the_run(hostile):
    ws = hostile.workspace
    (ws / ".git").mkdir()
    (ws / ".git" / "hooks").symlink_to("../../../../../../../../nonexistent/deep/dir")
    _give(hostile, ws)
    if _persons_daemon(hostile):  # refused, and the message says why and what to do
        await _refused_for_a_persons_daemon(hostile, "echo started")
        return
    r = await hostile.run("echo started")
    assert "started" in r.out, r.out


# --- 4. git indirection -------------------------------------------------------------------------


def _git_repo(ws: Path) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed (apt-get install git)")
    subprocess.run([git, "-c", "safe.directory=*", "init", "-q", str(ws)], check=True)
    (ws / "a.txt").write_text("a\n")
    subprocess.run([git, "-C", str(ws), "-c", "safe.directory=*", "-c", "user.name=t", "-c", "user.email=t@t.invalid",
                    "commit", "-qm", "init", "--allow-empty"], check=True)  # fmt: skip


REDIRECTS = (
    ".git/commondir", ".git/config.worktree", ".git/config", ".git/hooks/post-checkout",
    ".git/remotes/origin", ".git/branches/evil",
    ".git/info/attributes", ".git/worktrees/evil/commondir", ".git/modules/evil/config",
    ".git/objects/info/alternates",
)


async def test_git_redirections_are_read_only_and_git_still_works(hostile):
    ws = hostile.workspace
    _git_repo(ws)
    _give(hostile, ws)
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
    _git_repo(ws)
    _give(hostile, ws)
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
    _git_repo(ws)
    _give(hostile, ws)
    r = await hostile.run("export HOME=/tmp; git config --global safe.directory '*';"
                          "echo status:; git status --porcelain --untracked-files=all; echo end",
                          **kw)  # fmt: skip
    listed = r.out.split("status:\n", 1)[1].split("end", 1)[0].splitlines()
    assert listed == ["?? a.txt"], r.out  # the test's own untracked file, and nothing else


async def test_host_git_runs_no_planted_code_after_a_run(hostile, tmp_path):
    ws = hostile.workspace
    _git_repo(ws)
    _give(hostile, ws)
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
    _git_repo(ws)
    (ws / ".git").rename(ws / "realgit")
    (ws / ".git").write_text("gitdir: realgit\n")
    _give(hostile, ws)
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
    _git_repo(ws)
    mod = ws / ".git" / "modules" / "lib"
    (mod / "objects").mkdir(parents=True)
    (mod / "refs").mkdir()
    (mod / "config").write_text("[core]\n\tworktree = ../../../lib\n")
    (mod / "HEAD").write_text("ref: refs/heads/main\n")
    (ws / "lib").mkdir()
    (ws / "lib" / ".git").write_text("gitdir: ../.git/modules/lib\n")
    (ws / ".gitmodules").write_text('[submodule "lib"]\n\tpath = lib\n\turl = ../lib.invalid\n')
    _give(hostile, ws)
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


# --- 5. agent configuration in the workspace ------------------------------------------------------


async def test_agent_project_config_is_read_only(hostile):
    ws = hostile.workspace
    (ws / ".claude").mkdir()
    (ws / ".claude" / "settings.json").write_text("{}\n")
    _give(hostile, ws)
    r = await hostile.run(
        "(echo '{\"disableAllHooks\": true}' > .claude/settings.json) 2>/dev/null && echo W1;"
        "(echo '{\"disableAllHooks\": true}' > .claude/settings.local.json) 2>/dev/null && echo W2;"
        "(mkdir -p .codex && echo 'x' > .codex/config.toml) 2>/dev/null && echo W3;"
        "(echo '{}' > .mcp.json) 2>/dev/null && echo W4;"
        "(mkdir -p .vscode && echo '{}' > .vscode/tasks.json) 2>/dev/null && echo W5;"
        "cat /etc/claude-code/managed-settings.json; true"
    )
    for w in ("W1", "W2", "W3", "W4", "W5"):
        assert w not in r.out.split(), r.out
    assert (ws / ".claude" / "settings.json").read_text() == "{}\n"
    assert not (ws / ".claude" / "settings.local.json").exists()
    assert not (ws / ".codex").exists() and not (ws / ".mcp.json").exists()
    # The hook is installed where project settings cannot switch it off: managed settings.
    assert "ph-claude-hook" in r.out, r.out


# --- 7. io_uring --------------------------------------------------------------------------------

IO_URING_PROBE = r"""
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
fd = libc.syscall(425, 4, params)
print("io_uring_setup:", "refused " + errno.errorcode.get(ctypes.get_errno(), "?") if fd < 0 else "ALLOWED")
"""


async def test_io_uring_is_refused(hostile, request):
    kw = {}
    if hostile.name.startswith("docker"):
        kw["image"] = request.getfixturevalue("python_ref")
    (hostile.workspace / "probe.py").write_text(IO_URING_PROBE)
    _give(hostile, hostile.workspace)
    r = await hostile.run("python3 probe.py 2>&1 || /usr/bin/python3 probe.py 2>&1", **kw)
    assert "io_uring_setup:" in r.out, r.out
    assert "ALLOWED" not in r.out, r.out


# --- a root daemon in a root-owned workspace (the rented GPU box) -------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="a root daemon needs root")
@pytest.mark.parametrize("backend", ["bwrap_box", "docker_box"])
async def test_root_owned_workspace_is_id_mapped_to_an_unprivileged_agent(request, backend):
    from console.sandbox.identity import AGENT_ACCOUNT, agent_account

    box = request.getfixturevalue(backend)
    box.uid = 0  # keep the workspace root's, as `git clone` by root on a GPU box leaves it
    ws = box.workspace
    (ws / "existing.txt").write_text("root's file\n")
    os.chmod(ws / "existing.txt", 0o644)
    r = await box.run("id -u; ls -ln existing.txt; echo more >> existing.txt && echo APPENDED;"
                      "echo new > created.txt && echo CREATED")  # fmt: skip
    uid = agent_account(create=False)
    assert uid is not None, f"{AGENT_ACCOUNT} was not created"
    assert r.out.splitlines()[0] == str(uid[0]), r.out  # the agent is pilothouse-agent
    assert "APPENDED" in r.out and "CREATED" in r.out, r.out
    # On disk the person's files stay root's, new ones too.
    for name in ("existing.txt", "created.txt"):
        st = (ws / name).stat()
        assert (st.st_uid, st.st_gid) == (0, 0), name
    assert (ws / "existing.txt").read_text() == "root's file\nmore\n"


# --- found by the attack review of this change -----------------------------------------------------

SETID_PROBE = (
    "for b in /bin/busybox /usr/bin/busybox; do [ -x $b ] && cp $b ./setid-probe && break; done;"
    "chmod 4755 ./setid-probe;"
    "chmod u+s ./setid-probe; chmod g+s ./setid-probe; busybox install -m 6755 ./setid-probe "
    "./setid-probe2 2>/dev/null; ls -l ./setid-probe; true"
)


@pytest.mark.skipif(os.geteuid() != 0, reason="a root daemon needs root")
@pytest.mark.parametrize("backend", ["bwrap_box", "docker_box"])
async def test_no_set_id_binary_can_be_planted_in_a_root_owned_workspace(request, backend):
    """Writes through the id-mapped view land as root's: a set-id bit would make a host root
    binary anyone could run."""
    box = request.getfixturevalue(backend)
    box.uid = 0
    r = await box.run(SETID_PROBE)
    for name in ("setid-probe", "setid-probe2"):
        p = box.workspace / name
        if p.exists():
            mode = p.stat().st_mode
            assert not mode & 0o6000, (name, oct(mode), r.out)
    assert (box.workspace / "setid-probe").exists(), r.out  # the copy itself was allowed


async def test_set_id_bits_are_refused_everywhere(hostile):
    r = await hostile.run(SETID_PROBE)
    p = hostile.workspace / "setid-probe"
    assert p.exists(), r.out
    assert not p.stat().st_mode & 0o6000, r.out


@pytest.mark.skipif(os.geteuid() != 0, reason="a root daemon needs root")
@pytest.mark.parametrize("backend", ["bwrap_box", "docker_box"])
async def test_a_teammates_run_runs_as_the_teammate_not_the_folder_owner(request, backend):
    import pwd

    from tests.sandbox.conftest import _ensure_daemon_user

    mate = _ensure_daemon_user()
    box = request.getfixturevalue(backend)
    box.uid = 0
    os.chmod(box.workspace, 0o1777)  # a shared scratch project the teammate may write
    r = await box.run("id -u; echo x > mine.txt", requester=(mate.pw_uid, mate.pw_gid))
    assert r.out.splitlines()[0] == str(mate.pw_uid), r.out
    assert (box.workspace / "mine.txt").stat().st_uid == mate.pw_uid
    assert pwd.getpwuid(mate.pw_uid).pw_name == mate.pw_name


@pytest.mark.parametrize("backend", ["bwrap_box", "docker_box"])
async def test_a_workspace_swapped_for_a_link_after_the_check_is_not_followed(request, backend,
                                                                               tmp_path):  # fmt: skip
    from console.sandbox.fsview import open_dir_nofollow

    box = request.getfixturevalue(backend)
    ws = box.workspace
    (ws / "mine.txt").write_text("the checked folder\n")
    secret = tmp_path / "rootsecret"
    secret.mkdir(mode=0o700)
    (secret / "key").write_text(CANARY + "\n")
    fd = open_dir_nofollow(ws)  # what runs.py holds once the folder passed its check
    try:
        ws.rename(ws.with_name("ws-checked"))
        ws.symlink_to(secret)
        spec = box.spec("cat mine.txt key 2>&1; echo planted > planted", workspace_fd=fd)
        h = await box.backend.start(spec, None)
        out = (await h.output.read()).decode()
        await h.wait()
    finally:
        os.close(fd)
    assert "the checked folder" in out, out
    assert CANARY not in out, out
    assert not (secret / "planted").exists()


@pytest.mark.parametrize("link,target", [(".claude", "tools/claude"), (".envrc", "tools/envrc"),
                                         (".vscode", "tools/vsc")])
async def test_a_protected_link_into_the_workspace_protects_where_it_leads(hostile, link, target):
    ws = hostile.workspace
    (ws / target).parent.mkdir(parents=True, exist_ok=True)
    if link == ".envrc":
        (ws / target).write_text("echo fine\n")
    else:
        (ws / target).mkdir()
    (ws / link).symlink_to(target)
    _give(hostile, ws)
    dest = target if link == ".envrc" else f"{target}/settings.json"
    script = (f"(echo planted > {dest}) 2>/dev/null && echo WROTE;"
              f"(rm -f {link} && mkdir -p {link} && echo x > {link}/settings.json) 2>/dev/null"
              " && echo REPLACED; true")  # fmt: skip
    if _persons_daemon(hostile):
        await _refused_for_a_persons_daemon(hostile, script)
        return
    r = await hostile.run(script)
    assert "REPLACED" not in r.out, r.out  # the link itself cannot be swapped for a file
    assert (ws / link).is_symlink()
    assert "WROTE" not in r.out, r.out
    assert not (ws / dest).exists() or "planted" not in (ws / dest).read_text()
    assert any(link in n and target in n for n in r.handle.notes), r.handle.notes


async def test_hooks_path_and_scripts_named_by_git_config_are_read_only(hostile):
    ws = hostile.workspace
    _git_repo(ws)
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
    _give(hostile, ws)
    r = await hostile.run(
        "for f in .husky/pre-commit .husky/post-checkout tools/fsmon.sh shared.gitconfig "
        "inline.gitconfig; do (echo '#!/bin/sh' > $f) 2>/dev/null && echo WROTE:$f; done; true"
    )
    assert "WROTE:" not in r.out, r.out
    assert (ws / ".husky" / "pre-commit").read_text() == "#!/bin/sh\nexit 0\n"
    assert (ws / "shared.gitconfig").read_text() == "" and (ws / "inline.gitconfig").read_text() == ""


async def test_old_remotes_and_alternates_without_objects_info_are_read_only(hostile):
    ws = hostile.workspace
    _git_repo(ws)
    shutil.rmtree(ws / ".git" / "objects" / "info", ignore_errors=True)
    _give(hostile, ws)
    r = await hostile.run(
        "(echo /tmp > .git/objects/info/alternates) 2>/dev/null && echo W-ALT;"
        "(mkdir -p .git/remotes && echo 'URL: https://attacker.invalid' > .git/remotes/origin)"
        " 2>/dev/null && echo W-REMOTES;"
        "(mkdir -p .git/branches && echo x > .git/branches/x) 2>/dev/null && echo W-BRANCHES; true"
    )
    assert "W-" not in r.out, r.out
    assert not (ws / ".git/objects/info/alternates").exists() or not (
        ws / ".git/objects/info/alternates").read_text()  # fmt: skip


TIOCSTI_PROBE = r"""
import ctypes, errno, os
# The raw system call: Python's fcntl.ioctl narrows the request to 32 bits itself.
libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": 16, "aarch64": 29}[os.uname().machine]
fd = os.open("/dev/null", os.O_RDONLY)
ch = ctypes.c_char(b"x")
for cmd in (0x5412, 0x100005412):
    rc = libc.syscall(nr, fd, ctypes.c_ulong(cmd), ctypes.byref(ch))
    print(hex(cmd), "ALLOWED" if rc == 0 else errno.errorcode.get(ctypes.get_errno()))
"""


async def test_tiocsti_is_refused_whatever_the_upper_bits(hostile, request):
    kw = {}
    if hostile.name.startswith("docker"):
        kw["image"] = request.getfixturevalue("python_ref")
    (hostile.workspace / "tiocsti.py").write_text(TIOCSTI_PROBE)
    _give(hostile, hostile.workspace)
    r = await hostile.run("python3 tiocsti.py 2>&1", **kw)
    assert "0x5412 EPERM" in r.out and "0x100005412 EPERM" in r.out, r.out


async def test_a_persons_daemon_starts_no_docker_run_beside_a_live_run(request, tmp_path):
    """The root engine binds paths and follows links; a live run in the same workspace could
    plant one between our check and its bind, so a person's daemon refuses (root stages)."""
    from tests.sandbox.conftest import _user_box

    box = _user_box(tmp_path, "docker", request)
    with pytest.raises(AssertionError, match="another run is live"):
        await box.run("echo started", sibling=True)


async def test_a_nested_repository_written_by_the_agent_is_reported(hostile):
    ws = hostile.workspace
    (ws / "vendor" / "old" / ".git").mkdir(parents=True)  # the person's own, from before
    _give(hostile, ws)
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
    _git_repo(ws / "vendor" / "lib")
    _give(hostile, ws)
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
    from console.sandbox import protect

    hostile = request.getfixturevalue(backend)
    ws = hostile.workspace
    many = ws / "many"
    many.mkdir()
    for i in range(300):
        (many / f"f{i}").touch()
    _give(hostile, ws)
    monkeypatch.setattr(protect, "NESTED_MAX_ENTRIES", 100)  # a small bound, the same code
    r = await hostile.run("mkdir -p many/sub/.git; echo done")
    assert any("stopped early" in n for n in r.handle.notes + r.handle.end_notes), (
        r.handle.notes, r.handle.end_notes)
