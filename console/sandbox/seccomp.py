"""A seccomp filter for bubblewrap sandboxes (Docker brings its own default profile).

Allow by default and refuse a short list of calls that no coding agent needs and that widen the
kernel surface or reach outside the sandbox:

- TIOCSTI / TIOCLINUX ioctls: typing into a terminal (the classic sandbox escape; also
  refused by the kernel when dev.tty.legacy_tiocsti = 0, which many hosts do not set);
- keyctl, add_key, request_key: kernel keyrings are per user, not per sandbox;
- new user namespaces (clone / unshare with CLONE_NEWUSER; clone3 answers ENOSYS so libc falls
  back to clone, where the flags can be checked): nested namespaces are a kernel attack surface;
- io_uring_setup, io_uring_enter, io_uring_register;
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
            if nr < 0:
                return  # not on this architecture
            arr = (_ArgCmp * len(cmps))(*(_ArgCmp(a, SCMP_CMP_MASKED_EQ, m, v) for a, m, v in cmps))
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr if cmps else None)
            if rc < 0:
                raise OSError(-rc, f"seccomp rule for {call}: {os.strerror(-rc)}")

        eperm = _errno(errno.EPERM)
        for call in REFUSED:
            rule(call, eperm)
        for request in (TIOCSTI, TIOCLINUX):
            rule("ioctl", eperm, (1, 0xFFFFFFFF, request))
        rule("clone", eperm, (0, CLONE_NEWUSER, CLONE_NEWUSER))
        rule("unshare", eperm, (0, CLONE_NEWUSER, CLONE_NEWUSER))
        rule("clone3", _errno(errno.ENOSYS))
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
    """The same rules as a Docker seccomp profile (JSON): allow by default, refuse REFUSED,
    TIOCSTI/TIOCLINUX, new user namespaces, and answer clone3 with ENOSYS. One list serves both
    backends. Docker's default profile is replaced by this one (an engine takes one profile);
    with every capability dropped, what the default refuses beyond this list fails anyway."""
    import json

    archs = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    if os.uname().machine == "aarch64":
        archs = ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    deny = {"action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}
    rules: list[dict] = [{"names": list(REFUSED), **deny}]
    for request in (TIOCSTI, TIOCLINUX):
        rules.append({"names": ["ioctl"], **deny,
                      "args": [{"index": 1, "value": request, "op": "SCMP_CMP_EQ"}]})  # fmt: skip
    for call in ("clone", "unshare"):
        rules.append({"names": [call], **deny, "args": [
            {"index": 0, "value": CLONE_NEWUSER, "valueTwo": CLONE_NEWUSER,
             "op": "SCMP_CMP_MASKED_EQ"}]})  # fmt: skip
    rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS})
    return json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "architectures": archs,
                       "syscalls": rules}, separators=(",", ":"))  # fmt: skip
