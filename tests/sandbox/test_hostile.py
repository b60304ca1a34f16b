"""A hostile agent and a hostile repository, on both backends, under a root daemon and under an
ordinary-user daemon (a real second user). One test per class of issue 11; each proves from
the host's side what it can (files unchanged, nothing created), not only from exit codes.
"""

from __future__ import annotations

import os

import pytest

from tests.sandbox.hostile_kit import (
    CANARY,
    give,
    persons_daemon,
    refused_for_a_persons_daemon,
    workspace_owner,
)

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
    assert (made.stat().st_uid, made.stat().st_gid) == workspace_owner(hostile)


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
    give(hostile, ws)
    script = f"cat {protected} 2>&1; echo evil > {protected} 2>/dev/null; echo done"
    if persons_daemon(hostile):  # .claude/settings.json too: a bind of its own since s18
        await refused_for_a_persons_daemon(hostile, script)
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
    give(hostile, hostile.workspace)
    script = ("cat .git/config 2>&1; echo '[core] fsmonitor=evil' > .git/config 2>/dev/null;"
              "echo x > .git/hooks/post-checkout 2>/dev/null; echo done")  # fmt: skip
    if persons_daemon(hostile):
        await refused_for_a_persons_daemon(hostile, script)
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
    give(hostile, ws)
    if persons_daemon(hostile):  # refused, and the message says why and what to do
        await refused_for_a_persons_daemon(hostile, "echo started")
        return
    r = await hostile.run("echo started")
    assert "started" in r.out, r.out


# --- 5. agent configuration in the workspace ------------------------------------------------------


async def test_agent_project_config_is_read_only(hostile):
    ws = hostile.workspace
    (ws / ".claude").mkdir()
    (ws / ".claude" / "settings.json").write_text("{}\n")
    give(hostile, ws)
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
    give(hostile, hostile.workspace)
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
    give(hostile, ws)
    dest = target if link == ".envrc" else f"{target}/settings.json"
    script = (f"(echo planted > {dest}) 2>/dev/null && echo WROTE;"
              f"(rm -f {link} && mkdir -p {link} && echo x > {link}/settings.json) 2>/dev/null"
              " && echo REPLACED; true")  # fmt: skip
    if persons_daemon(hostile):
        await refused_for_a_persons_daemon(hostile, script)
        return
    r = await hostile.run(script)
    assert "REPLACED" not in r.out, r.out  # the link itself cannot be swapped for a file
    assert (ws / link).is_symlink()
    assert "WROTE" not in r.out, r.out
    assert not (ws / dest).exists() or "planted" not in (ws / dest).read_text()
    assert any(link in n and target in n for n in r.handle.notes), r.handle.notes


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
    give(hostile, hostile.workspace)
    r = await hostile.run("python3 tiocsti.py 2>&1", **kw)
    assert "0x5412 EPERM" in r.out and "0x100005412 EPERM" in r.out, r.out


async def test_a_persons_daemon_starts_no_docker_run_beside_a_live_run(request, tmp_path):
    """The root engine binds paths and follows links; a live run in the same workspace could
    plant one between our check and its bind, so a person's daemon refuses (root stages)."""
    from tests.sandbox.conftest import _user_box

    box = _user_box(tmp_path, "docker", request)
    with pytest.raises(AssertionError, match="another run is live"):
        await box.run("echo started", sibling=True)

