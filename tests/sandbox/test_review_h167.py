"""Review h167: an attack review of the sandboxes from a process inside a run.

Set-id and file-capability binaries in a root-owned workspace. Under a root daemon such a
workspace is id-mapped: root's files are the agent's own inside, and what it writes lands as
root's. The kernel takes set-user-ID, set-group-ID and security.capability off a file written
with write(2) by a writer without CAP_FSETID, but not off one written through a shared mapping:
a set-id root binary already in the workspace (a root file system being built, a `make install
DESTDIR=` as root) had its code replaced through mmap and kept its set-user-ID bit, and one with
file capabilities kept them (a root shell, or cap_net_raw, for whoever runs it on the host).
Every set-id or capability-bearing file of an id-mapped workspace is read-only in the run now.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

CAP_XATTR = "security.capability"
# vfs_cap_data revision 2, effective, permitted = CAP_NET_RAW (13)
CAP_NET_RAW = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)

REWRITE = r"""
import mmap, os, sys
for rel in sys.argv[1:]:
    try:
        fd = os.open(rel, os.O_RDWR)
        m = mmap.mmap(fd, 16, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        m[0:4] = b"EVIL"
        m.close()
        os.close(fd)
        print("REWROTE", rel)
    except OSError as e:
        print("refused", rel, e.strerror)
"""

def _python(hostile, request) -> dict:
    return {"image": request.getfixturevalue("python_ref")} if hostile.name.startswith("docker") else {}


PLANTED = {"rootfs/usr/bin/passwd": 0o4755, "rootfs/usr/bin/wall": 0o2755,
           "rootfs/usr/bin/ping": 0o755}  # fmt: skip


def _plant(ws: Path) -> None:
    for rel, mode in PLANTED.items():
        p = ws / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile("/bin/true", p)
        os.chown(p, 0, 0)
        os.chmod(p, mode)
    os.setxattr(ws / "rootfs/usr/bin/ping", CAP_XATTR, CAP_NET_RAW)
    (ws / "rewrite.py").write_text(REWRITE)


def _privileges(p: Path) -> list[str]:
    out = []
    mode = p.stat().st_mode
    if mode & 0o6000:
        out.append(oct(mode & 0o6000))
    try:
        os.getxattr(p, CAP_XATTR)
        out.append(CAP_XATTR)
    except OSError:
        pass
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="a root daemon needs root")
@pytest.mark.parametrize("backend", ["bwrap_box", "docker_box"])
async def test_a_set_id_or_capability_binary_in_a_root_owned_workspace_is_not_rewritten(
        request, backend):  # fmt: skip
    box = request.getfixturevalue(backend)
    box.uid = 0  # the workspace stays root's: id-mapped to the agent
    _plant(box.workspace)
    kw = {"image": request.getfixturevalue("python_ref")} if box.name == "docker" else {}
    r = await box.run("python3 rewrite.py " + " ".join(PLANTED) + " 2>&1", **kw)
    rewritten = {}
    for rel in PLANTED:
        p = box.workspace / rel
        kept = _privileges(p)
        assert kept, f"{rel}: the test's own planting failed"
        if p.read_bytes()[:4] == b"EVIL":
            rewritten[rel] = kept  # the agent's code, and root's privileges still on it
    assert not rewritten, (rewritten, r.out)
    assert "refused" in r.out, r.out  # the script ran, and was turned away


@pytest.mark.skipif(os.geteuid() != 0, reason="a root daemon needs root")
@pytest.mark.parametrize("backend", ["bwrap_box", "docker_box"])
async def test_a_root_file_with_a_name_outside_a_root_owned_workspace_is_not_written(
        request, backend):  # fmt: skip
    """A hard link's other name outside the workspace (a root file system made with `cp -al`,
    backups made with `rsync --link-dest`, `git clone` of a repository on the same disk, which
    links its objects): through the id-mapped view root's file was the agent's to write."""
    box = request.getfixturevalue(backend)
    box.uid = 0
    outside = box.home / "outside" / "tool"
    outside.parent.mkdir()
    outside.write_text("#!/bin/sh\necho root's tool\n")
    os.chmod(outside, 0o755)
    os.link(outside, box.workspace / "tool")
    (box.workspace / "inside-a").write_text("a\n")
    os.link(box.workspace / "inside-a", box.workspace / "inside-b")  # both names inside: writable
    r = await box.run("echo AGENT >> tool; echo AGENT >> inside-a; echo done")
    assert "done" in r.out, r.out
    assert outside.read_text() == "#!/bin/sh\necho root's tool\n", r.out
    assert (box.workspace / "inside-b").read_text() == "a\nAGENT\n", r.out


@pytest.mark.skipif(os.geteuid() != 0, reason="a root daemon needs root")
async def test_too_many_files_linked_from_outside_refuse_the_run_saying_how_to_fix_it(bwrap_box):
    from console.sandbox.base import SandboxError
    from console.sandbox.privileged_files import LINKED_OUT_MAX

    bwrap_box.uid = 0
    outside = bwrap_box.home / "objects"
    outside.mkdir()
    for i in range(LINKED_OUT_MAX + 1):
        (outside / f"o{i}").write_text("x")
        os.link(outside / f"o{i}", bwrap_box.workspace / f"o{i}")
    with pytest.raises(SandboxError, match="hard links") as caught:
        await bwrap_box.run("echo started")
    assert "--no-hardlinks" in str(caught.value.hint), caught.value


@pytest.mark.skipif(os.geteuid() != 0, reason="writing a root-only file in the host's /etc needs root")
async def test_a_root_only_file_gone_from_etc_does_not_stop_the_next_runs(bwrap_box):
    """The masks over /etc's root-only files are listed once a minute. A file there for a
    moment (useradd's /etc/subuid.lock, vipw's, a package manager's) was still listed after it
    went, and bubblewrap, asked to mask a path that no longer was, failed every run's start
    for up to a minute: "Can't create file at /etc/subuid.lock: Read-only file system"."""
    import uuid

    passing = Path("/etc") / f"ph-h167-{uuid.uuid4().hex[:8]}.lock"
    passing.write_text("1\n")
    os.chmod(passing, 0o640)  # a group's: masked while it is there
    try:
        first = await bwrap_box.run("echo started")
        assert "started" in first.out, first.out
    finally:
        passing.unlink()
    second = await bwrap_box.run("echo started")
    assert "started" in second.out, second.out


SOCKET_PROBE = r"""
import socket
s = socket.socket(socket.AF_UNIX)
try:
    s.connect("/workspace/run/app.sock"); s.sendall(b"from the sandbox"); print("CONNECTED")
except OSError as e:
    print("refused:", e.strerror)
"""


async def test_a_host_services_socket_in_the_workspace_is_not_reachable(hostile, request):
    """A unix socket is reached by its path, whatever the network namespace: a service on the
    host listening in the workspace (a dev server's gunicorn or php-fpm socket, supervisord's,
    a database's run folder in the project) answered the agent, past the gate."""
    import socket

    from tests.sandbox.hostile_kit import give

    (hostile.workspace / "run").mkdir()
    (hostile.workspace / "probe.py").write_text(SOCKET_PROBE)
    give(hostile, hostile.workspace / "run", hostile.workspace / "probe.py")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(hostile.workspace / "run" / "app.sock"))
    os.chmod(hostile.workspace / "run" / "app.sock", 0o777)  # as such services leave them
    listener.listen(4)
    listener.setblocking(False)
    try:
        r = await hostile.run("python3 probe.py 2>&1", **_python(hostile, request))
        assert "refused:" in r.out or "CONNECTED" in r.out, r.out
        with pytest.raises(BlockingIOError):
            listener.accept()
        assert "CONNECTED" not in r.out, r.out
    finally:
        listener.close()


async def test_a_host_programs_named_pipe_in_the_workspace_is_not_reachable(hostile):
    """The same for a named pipe a program on the host reads (or writes) in the workspace."""
    (hostile.workspace / "run").mkdir()
    fifo = hostile.workspace / "run" / "commands"
    os.mkfifo(fifo, 0o666)
    os.chmod(fifo, 0o666)
    from tests.sandbox.hostile_kit import give

    give(hostile, hostile.workspace / "run")
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        r = await hostile.run("echo from-the-sandbox > run/commands && echo WROTE; echo done")
        assert "done" in r.out, r.out
        try:
            got = os.read(reader, 4096)
        except BlockingIOError:
            got = b""
        assert b"from-the-sandbox" not in got and "WROTE" not in r.out, r.out
    finally:
        os.close(reader)


def test_a_file_only_root_may_read_in_etc_is_left_to_the_kernel(tmp_path):
    """useradd's lock and temporary files (root's alone) came and went between a start's list
    of masks and bubblewrap's mount, failing starts while another session added users; the agent
    is never uid 0, so the kernel refuses them without a mask."""
    from console.sandbox.bwrap_args import etc_masks

    etc = tmp_path / "etc"
    etc.mkdir()
    for name, mode in (("subuid.lock", 0o600), ("group-readable", 0o640)):
        (etc / name).write_text("x")
        os.chmod(etc / name, mode)
    files, _dirs = etc_masks(str(etc))
    assert str(etc / "group-readable") in files and str(etc / "subuid.lock") not in files, files


@pytest.mark.skipif(os.geteuid() != 0, reason="a root daemon needs root, and mknod root")
@pytest.mark.parametrize("backend,owner", [("bwrap_box", 0), ("docker_box", 0), ("docker_box", 1000)])
async def test_a_device_node_in_the_workspace_does_not_open(request, backend, owner):
    """A root file system being built holds device nodes (debootstrap makes dev/console,
    dev/null, dev/tty). The engine bound the workspace without nodev, so one opened, as far as
    the engine's device list allows: /dev/console's 5:1 is on it, so an agent could write to
    the host's console, and read what is typed there. bubblewrap's binds are nodev; the root
    daemon's staged view is now too (and nosuid), and the engine's bind of it keeps both."""
    box = request.getfixturevalue(backend)
    box.uid = owner
    os.mknod(box.workspace / "null", 0o20666, os.makedev(1, 3))  # the engine's list has it
    os.chmod(box.workspace / "null", 0o666)
    os.chown(box.workspace / "null", owner, owner)
    r = await box.run("echo x > null && echo OPENED; echo done")
    assert "done" in r.out, r.out
    assert "OPENED" not in r.out, r.out


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
async def test_a_device_node_in_the_workspace_does_not_open_under_any_daemon(hostile):
    """A person's daemon hands the engine the workspace's path: no staged view to make nodev."""
    uid, gid = os.stat(hostile.workspace).st_uid, os.stat(hostile.workspace).st_gid
    os.mknod(hostile.workspace / "null", 0o20666, os.makedev(1, 3))
    os.chmod(hostile.workspace / "null", 0o666)
    os.chown(hostile.workspace / "null", uid, gid)
    r = await hostile.run("echo x > null && echo OPENED; echo done")
    assert "done" in r.out and "OPENED" not in r.out, r.out


# --- what held (each on both backends, under a root daemon and a person's) ---------------------

IPC_PROBE = r"""
import ctypes, errno, os, socket, sys
abstract, key, shm, mq = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
libc = ctypes.CDLL(None, use_errno=True)
s = socket.socket(socket.AF_UNIX)
try:
    s.connect("\0" + abstract); print("REACHED abstract")
except OSError as e:
    print("abstract:", e.strerror)
r = libc.shmget(key, 0, 0)
print("REACHED sysv" if r >= 0 else f"sysv: {os.strerror(ctypes.get_errno())}")
print("REACHED posix shm" if os.path.exists("/dev/shm/" + shm) else "posix shm: absent")
libc.mq_open.restype = ctypes.c_int
r = libc.mq_open(("/" + mq).encode(), os.O_RDONLY)
print("REACHED mqueue" if r >= 0 else f"mqueue: {os.strerror(ctypes.get_errno())}")
"""


async def test_host_ipc_and_abstract_sockets_are_not_shared(hostile, request):
    import ctypes
    import socket
    import uuid

    tag = "ph-h167-" + uuid.uuid4().hex[:12]
    key = int(uuid.uuid4().hex[:7], 16)
    libc = ctypes.CDLL(None, use_errno=True)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind("\0" + tag)
    listener.listen(4)
    listener.setblocking(False)
    shm_id = libc.shmget(key, 4096, 0o1000 | 0o666)  # IPC_CREAT
    Path("/dev/shm", tag).write_text("host\n")
    libc.mq_open.restype = ctypes.c_int
    mq = libc.mq_open(("/" + tag).encode(), os.O_CREAT | os.O_RDWR, 0o666, None)
    try:
        assert shm_id >= 0 and mq >= 0, "the host's own IPC objects could not be made"
        (hostile.workspace / "ipc.py").write_text(IPC_PROBE)
        from tests.sandbox.hostile_kit import give

        give(hostile, hostile.workspace / "ipc.py")
        r = await hostile.run(f"python3 ipc.py {tag} {key} {tag} {tag} 2>&1", **_python(hostile, request))
        assert "abstract:" in r.out and "sysv:" in r.out and "mqueue:" in r.out, r.out
        assert "REACHED" not in r.out, r.out
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
        libc.shmctl(shm_id, 0, None)  # IPC_RMID
        os.close(mq) if mq >= 0 else None
        libc.mq_unlink(("/" + tag).encode())
        Path("/dev/shm", tag).unlink(missing_ok=True)


# int 0x80 from a 64-bit process: the 32-bit system call table, which the filter covers too.
I386_PROBE = r"""
import ctypes, errno, mmap
code = bytes.fromhex("5355 89f8 89f3 4989cb 89d1 4489da 4489c6 4489cf 31ed cd80 4863c0 5d5b c3")
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
T = ctypes.c_long
f = ctypes.CFUNCTYPE(T, T, T, T, T, T, T)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
for name, nr, args in [("getpid", 20, ()), ("keyctl", 288, (0, 0xFFFFFFFD)), ("bpf", 357, ()),
                       ("perf_event_open", 336, ()), ("userfaultfd", 374, ()),
                       ("io_uring_setup", 425, (1,)), ("unshare_newuser", 310, (0x10000000,)),
                       ("socket_vsock", 359, (40, 1)), ("chmod_setuid", 15, (0, 0o4755)),
                       ("ioctl_tiocsti", 54, (0, 0x5412))]:
    r = f(nr, *(list(args) + [0] * (5 - len(args))))
    print("i386", name, errno.errorcode.get(-r, "?") if r < 0 else "ALLOWED")
"""


async def test_the_32_bit_system_calls_are_filtered_too(hostile, request):
    if os.uname().machine != "x86_64":
        pytest.skip("int 0x80 is x86_64's way into the 32-bit calls")
    (hostile.workspace / "i386.py").write_text(I386_PROBE)
    from tests.sandbox.hostile_kit import give

    give(hostile, hostile.workspace / "i386.py")
    r = await hostile.run("python3 i386.py 2>&1", **_python(hostile, request))
    if "i386 getpid ALLOWED" not in r.out:
        pytest.skip(f"this kernel runs no 32-bit calls (IA32 emulation off): {r.out[-300:]}")
    lines = [x for x in r.out.splitlines() if x.startswith("i386 ") and "getpid" not in x]
    assert len(lines) == 9, r.out
    assert all(x.endswith(" EPERM") for x in lines), r.out


async def test_file_capabilities_cannot_be_set_inside(hostile, request):
    script = ("import os; open('capped', 'w').close()\n"
              "try:\n"
              f"    os.setxattr('capped', {CAP_XATTR!r}, {CAP_NET_RAW!r}); print('SET')\n"
              "except OSError as e: print('refused', e.strerror)\n")  # fmt: skip
    (hostile.workspace / "cap.py").write_text(script)
    from tests.sandbox.hostile_kit import give

    give(hostile, hostile.workspace / "cap.py")
    r = await hostile.run("python3 cap.py 2>&1", **_python(hostile, request))
    assert "refused" in r.out and "SET" not in r.out, r.out
    with pytest.raises(OSError):
        os.getxattr(hostile.workspace / "capped", CAP_XATTR)
