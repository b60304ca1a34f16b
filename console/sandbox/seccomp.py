"""One seccomp rule list for both backends: a BPF filter for bubblewrap, a profile for Docker.

Allow by default and refuse a short list of calls that no coding agent needs and that widen the
kernel surface or reach outside the sandbox:

- TIOCSTI / TIOCLINUX ioctls: typing into a terminal (the classic sandbox escape; also
  refused by the kernel when dev.tty.legacy_tiocsti = 0, which many hosts do not set);
- keyctl, add_key, request_key: kernel keyrings are per user, not per sandbox;
- new user namespaces (clone / unshare with CLONE_NEWUSER; clone3 answers ENOSYS so libc falls
  back to clone, where the flags can be checked): nested namespaces are a kernel attack surface;
- io_uring_setup, io_uring_enter, io_uring_register;
- AF_VSOCK sockets (socket with domain 40; the 32-bit ABI's socketcall, whose arguments the
  filter cannot read, answers ENOSYS): vsock is not scoped by network namespaces, so a sandbox
  without a network reached the hypervisor's vsock services on a VM, and a host's VMs' guests,
  past the gate (review h140). Docker's default profile, which ours replaces, refuses it too;
- set-user-ID and set-group-ID mode bits (chmod, fchmod, fchmodat, fchmodat2, creat, open,
  openat, mknod, mknodat with 04000 or 02000 in the mode; openat2, whose mode sits in a struct
  the filter cannot read, answers ENOSYS so libc falls back to openat): with a root daemon in a
  root-owned workspace the agent's files land on disk as root's, and a set-id root binary left
  there would make root of the next person who runs it;
- bpf, perf_event_open, userfaultfd, kexec, module loading, open_by_handle_at, acct, swapon,
  swapoff, reboot, syslog, the new mount API: privileged or exploit-friendly, unused by agents.

The BPF program is built once per process with libseccomp (ctypes) and handed to bwrap through
`--seccomp FD`. Without libseccomp the sandbox still starts, and the run's notes say so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_MASKED_EQ = 7
SCMP_ARCH_X86 = 0x40000003
SCMP_ARCH_X32 = 0x4000003E
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
CLONE_NEWUSER = 0x10000000
AF_VSOCK = 40

REFUSED = (
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "open_by_handle_at", "acct", "swapon", "swapoff", "reboot", "syslog",
    "fsopen", "fsconfig", "fsmount", "fspick", "open_tree", "move_mount", "mount_setattr",
    # io_uring: a large kernel surface with a long record of exploits; Docker's and Codex's
    # filters refuse it too. Programs fall back to plain system calls.
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    # Mount and namespace changes, and old or privileged calls: without capabilities they fail
    # anyway; refusing them keeps the filter equivalent to Docker's default, which ours replaces.
    "mount", "umount2", "pivot_root", "setns", "name_to_handle_at", "lookup_dcookie",
    "quotactl", "vm86", "vm86old", "nfsservctl", "uselib",
)  # fmt: skip


SETUID, SETGID = 0o4000, 0o2000
# (call, index of its mode argument): refused when the mode asks for a set-id bit.
MODE_ARGS = (
    ("chmod", 1), ("fchmod", 1), ("fchmodat", 2), ("fchmodat2", 2), ("creat", 1),
    ("open", 2), ("openat", 3), ("mknod", 1), ("mknodat", 2),
)  # fmt: skip

Cmp = tuple[int, int, int]  # (argument index, mask, value): refused when arg & mask == value


def rules() -> list[tuple[str, int, tuple[Cmp, ...]]]:
    """(call, errno to answer, conditions), in one place for both backends."""
    out: list[tuple[str, int, tuple[Cmp, ...]]] = [(c, errno.EPERM, ()) for c in REFUSED]
    for request in (TIOCSTI, TIOCLINUX):
        out.append(("ioctl", errno.EPERM, ((1, 0xFFFFFFFF, request),)))
    out.append(("socket", errno.EPERM, ((0, 0xFFFFFFFF, AF_VSOCK),)))
    for call in ("clone", "unshare"):
        out.append((call, errno.EPERM, ((0, CLONE_NEWUSER, CLONE_NEWUSER),)))
    for call, index in MODE_ARGS:
        for bit in (SETUID, SETGID):
            out.append((call, errno.EPERM, ((index, bit, bit),)))
    out.append(("clone3", errno.ENOSYS, ()))
    out.append(("openat2", errno.ENOSYS, ()))
    out.append(("socketcall", errno.ENOSYS, ()))  # x86's 32-bit ABI only (see the socket rule)
    return out


def _errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


@functools.lru_cache(maxsize=1)
def filter_bpf() -> bytes | None:
    """The compiled filter, or None when libseccomp is not available here."""
    name = ctypes.util.find_library("seccomp")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp),
    ]  # fmt: skip
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        return None
    try:
        if os.uname().machine == "x86_64":
            # Filter the 32-bit ABIs too, or `int 0x80` would walk around every rule.
            for arch in (SCMP_ARCH_X86, SCMP_ARCH_X32):
                lib.seccomp_arch_add(ctx, arch)

        def rule(call: str, action: int, *cmps: tuple[int, int, int]) -> None:
            nr = lib.seccomp_syscall_resolve_name(call.encode())
            if nr == -1:  # __NR_SCMP_ERROR: unknown to libseccomp. Other negative numbers
                return  # are calls of the added 32-bit ABIs only (socketcall): libseccomp maps them
            arr = (_ArgCmp * len(cmps))(*(_ArgCmp(a, SCMP_CMP_MASKED_EQ, m, v) for a, m, v in cmps))
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr if cmps else None)
            if rc < 0:
                raise OSError(-rc, f"seccomp rule for {call}: {os.strerror(-rc)}")

        for call, code, cmps in rules():
            rule(call, _errno(code), *cmps)
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            if lib.seccomp_export_bpf(ctx, fd) != 0:
                return None
            size = os.lseek(fd, 0, os.SEEK_END)
            os.lseek(fd, 0, os.SEEK_SET)
            return os.read(fd, size)
        finally:
            os.close(fd)
    except OSError:
        return None
    finally:
        lib.seccomp_release(ctx)


def filter_fd() -> int | None:
    """A fresh inheritable memfd holding the filter (bwrap reads it once), or None."""
    bpf = filter_bpf()
    if bpf is None:
        return None
    fd = os.memfd_create("seccomp-bpf", 0)
    os.write(fd, bpf)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def docker_profile() -> str:
    """rules() as a Docker seccomp profile (JSON), allowing everything else.

    It replaces Docker's default profile (an engine takes one); with every capability dropped,
    what the default refuses beyond this list fails anyway."""
    import json

    archs = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    if os.uname().machine == "aarch64":
        archs = ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    syscalls = []
    for call, code, cmps in rules():
        entry: dict = {"names": [call], "action": "SCMP_ACT_ERRNO", "errnoRet": code}
        if cmps:  # Docker's MASKED_EQ: value is the mask, valueTwo what the masked arg equals
            entry["args"] = [{"index": i, "value": m, "valueTwo": v, "op": "SCMP_CMP_MASKED_EQ"}
                             for i, m, v in cmps]  # fmt: skip
        syscalls.append(entry)
    return json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "architectures": archs,
                       "syscalls": syscalls}, separators=(",", ":"))  # fmt: skip
