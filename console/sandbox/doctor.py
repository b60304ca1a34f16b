"""`pilothouse doctor`: can this machine run sandboxes, and if not, exactly what to change.

run_checks() returns Findings (ok / warning / error) with a detail and a fix a person can paste.
Every check really tries the thing (a bwrap sandbox, a bridge into it, a Docker ping) instead
of trusting what is installed. Blocking; the daemon calls it in a thread.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bwrap import BWRAP, find_bwrap, probe_bwrap
from .bwrap_args import system_root
from .cgroups import Limiter

APPARMOR_SYSCTL = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"
APPARMOR_PROFILE = """abi <abi/4.0>,
include <tunables/global>

profile bwrap /usr/bin/bwrap flags=(unconfined) {
  userns,
  include if exists <local/bwrap>
}
"""
MIN_FREE_WARN = 2 * 1024**3
MIN_FREE_ERROR = 200 * 1024**2


@dataclass(frozen=True)
class Finding:
    name: str
    status: str  # "ok" | "warning" | "error"
    detail: str
    fix: str = ""


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def check_bwrap() -> Finding:
    path = find_bwrap()
    if path is None:
        return Finding(
            "bubblewrap", "warning", "bubblewrap is not installed",
            "sudo apt install bubblewrap  (Fedora: sudo dnf install bubblewrap)",
        )  # fmt: skip
    ok, why = probe_bwrap(path)
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    except OSError:
        version = ""
    if ok:
        return Finding("bubblewrap", "ok", f"{version.strip() or path} creates sandboxes here")
    return Finding("bubblewrap", "error", why, "see the user-namespaces finding below")


def check_userns() -> Finding:
    """Unprivileged user namespaces: what bwrap needs when the daemon is not root."""
    problems: list[str] = []
    fixes: list[str] = []
    clone = _read("/proc/sys/kernel/unprivileged_userns_clone")
    if clone == "0":
        problems.append("kernel.unprivileged_userns_clone = 0")
        fixes.append("sudo sysctl -w kernel.unprivileged_userns_clone=1")
    max_ns = _read("/proc/sys/user/max_user_namespaces")
    if max_ns == "0":
        problems.append("user.max_user_namespaces = 0")
        fixes.append("sudo sysctl -w user.max_user_namespaces=15000")
    apparmor = _read(APPARMOR_SYSCTL)
    if apparmor == "1":
        problems.append(
            "kernel.apparmor_restrict_unprivileged_userns = 1 (Ubuntu 23.10+): AppArmor denies "
            "user namespaces to programs without a profile that allows them"
        )
        fixes.append(
            "either give bwrap a profile: write this to /etc/apparmor.d/bwrap\n"
            + APPARMOR_PROFILE
            + "then: sudo apparmor_parser -r /etc/apparmor.d/bwrap\n"
            "or turn the restriction off for everyone: "
            "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (and put "
            "kernel.apparmor_restrict_unprivileged_userns=0 in /etc/sysctl.d/60-pilothouse.conf)"
        )
    settings = f"max_user_namespaces={max_ns}" + (
        f", unprivileged_userns_clone={clone}" if clone else ""
    )
    if apparmor is not None:
        settings += f", apparmor_restrict_unprivileged_userns={apparmor}"
    if not problems:
        return Finding("user namespaces", "ok", f"available ({settings})")
    # Root needs no unprivileged namespaces, but a daemon run as a person does.
    status = "warning" if os.geteuid() == 0 else "error"
    return Finding("user namespaces", status, "; ".join(problems), "\n".join(fixes))


def check_bridge() -> Finding:
    """Can this user put the network bridge into a bwrap sandbox's network namespace?"""
    path = find_bwrap()
    if path is None or not probe_bwrap(path)[0]:
        return Finding("network bridge", "warning", "not checked: bubblewrap is not usable")
    r, w = os.pipe()
    proc = subprocess.Popen(
        [path, "--unshare-all", "--die-with-parent", *system_root(), "--proc", "/proc",
         "--dev", "/dev", "--info-fd", str(w), "sleep", "10"],
        pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(w)
    try:
        import json

        data = b""
        while b"}" not in data:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            data += chunk
        pid = json.loads(data)["child-pid"]
        from . import nsenter_listen

        a, b = socket.socketpair()
        helper = subprocess.run(
            [sys.executable, "-I", "-S", nsenter_listen.__file__, str(pid), "3128",
             str(b.fileno())],
            pass_fds=(b.fileno(),), capture_output=True, timeout=10,
        )  # fmt: skip
        b.close()
        msg, fds, _, _ = socket.recv_fds(a, 1024, 1)
        for fd in fds:
            os.close(fd)
        a.close()
        if msg == b"ok" and helper.returncode == 0:
            return Finding("network bridge", "ok", "the daemon can listen inside a sandbox")
        return Finding(
            "network bridge", "error", f"cannot listen inside a sandbox: {msg.decode(errors='replace')}",
            "run the daemon as the user who starts the sandboxes (it must own their user namespace)",
        )  # fmt: skip
    except Exception as e:  # noqa: BLE001 - a doctor reports, it does not crash
        return Finding("network bridge", "error", f"bridge check failed: {e}")
    finally:
        os.close(r)
        proc.kill()
        proc.wait()


def check_docker() -> list[Finding]:
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        version = client.version()
        info = client.info()
    except Exception as e:  # noqa: BLE001
        from .docker import _engine_error

        return [
            Finding("docker", "warning", _engine_error(e), 'only needed for sandbox = "docker"')
        ]
    sec = info.get("SecurityOptions") or []
    names = {s.split(",")[0].removeprefix("name=") for s in sec}
    detail = (
        f"engine {version.get('Version')} (API {version.get('ApiVersion')}), cgroup "
        f"v{info.get('CgroupVersion', '?')}, security: {', '.join(sorted(names)) or 'none'}"
    )
    out = [Finding("docker", "ok", detail)]
    if "seccomp" not in names:
        out.append(Finding(
            "docker seccomp", "warning", "the engine runs containers without seccomp",
            "enable seccomp in the engine (it is the default; check daemon.json)",
        ))  # fmt: skip
    rootless = "rootless" in names
    if os.geteuid() != 0 and not rootless:
        out.append(Finding(
            "docker bridge", "warning",
            "rootful Docker with a non-root daemon: the daemon cannot enter a container's network "
            "namespace to put the gate's bridge there, so Docker runs are refused",
            "use rootless Docker (dockerd-rootless-setuptool.sh install), or bubblewrap",
        ))  # fmt: skip
    if "userns" in names:
        out.append(Finding("docker userns", "ok", "user namespace remapping is on"))
    return out


def check_cgroups() -> Finding:
    lim = Limiter.detect()
    how = lim.can_enforce()
    detail = f"{lim.detail}; " + ", ".join(f"{k}: {v}" for k, v in how.items())
    if lim.mode in ("v1", "v2"):
        return Finding("limits (bwrap)", "ok", detail)
    return Finding(
        "limits (bwrap)", "warning", detail,
        "run the daemon in a delegated cgroup: systemd-run --user --scope -p Delegate=yes "
        "pilothouse daemon",
    )  # fmt: skip


def check_nvml() -> Finding:
    try:
        import pynvml
    except ImportError:
        return Finding(
            "nvml", "warning", "nvidia-ml-py is not installed", "pip install nvidia-ml-py"
        )
    try:
        pynvml.nvmlInit()
    except Exception as e:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return Finding("nvml", "warning", f"no NVIDIA driver ({e}): GPU panels stay empty")
    try:
        count = pynvml.nvmlDeviceGetCount()
        driver = pynvml.nvmlSystemGetDriverVersion()
        driver = driver.decode() if isinstance(driver, bytes) else driver
    finally:
        pynvml.nvmlShutdown()
    nodes = [p for p in ("/dev/nvidiactl", "/dev/nvidia-uvm") if os.path.exists(p)]
    return Finding(
        "nvml", "ok", f"driver {driver}, {count} GPU(s); device nodes: {', '.join(nodes)}"
    )


def check_disk(paths: Any) -> Finding:
    target = Path(getattr(paths, "data_dir", None) or Path.home())
    while not target.exists() and target != target.parent:
        target = target.parent
    if not target.is_dir() or not os.access(target, os.W_OK | os.X_OK):
        # Every command would fail to make or use its folders here (a file named as the home,
        # a folder this user may not write): the free space of the place says nothing.
        what = "is not a folder" if not target.is_dir() else "is not writable by this user"
        return Finding("disk", "error", f"{target} {what}: the history, sockets and logs "
                       "cannot be made there",
                       "point PILOTHOUSE_HOME at a folder you may write, or create it")
    usage = shutil.disk_usage(target)
    free_gib = usage.free / 1024**3
    detail = f"{free_gib:.1f} GiB free at {target}"
    if usage.free < MIN_FREE_ERROR:
        return Finding("disk", "error", detail, "free space or set PILOTHOUSE_HOME elsewhere")
    if usage.free < MIN_FREE_WARN:
        return Finding("disk", "warning", detail, "the history database grows; free some space")
    return Finding("disk", "ok", detail)


def check_agent_identity() -> Finding:
    """Who the agent runs as here, and what a root daemon means for it."""
    from .base import CLAUDE_MANAGED_DIR
    from .identity import AGENT_ACCOUNT, agent_account

    if os.geteuid() != 0:
        detail = (f"agents run as you (uid {os.getuid()}), in their own user namespace; "
                  "they can reach only what the sandbox mounts")  # fmt: skip
        if not os.path.isdir(CLAUDE_MANAGED_DIR):
            return Finding(
                "agent identity", "warning",
                detail + f"; {CLAUDE_MANAGED_DIR} is missing, so Claude Code's hook can be "
                "switched off by a repository's .claude settings",
                f"sudo mkdir {CLAUDE_MANAGED_DIR}",
            )  # fmt: skip
        return Finding("agent identity", "ok", detail)
    account = agent_account(create=False)
    who = (f"{AGENT_ACCOUNT} (uid {account[0]})" if account
           else f"{AGENT_ACCOUNT} (made on the first run in a root-owned workspace)")  # fmt: skip
    return Finding(
        "agent identity", "warning",
        "the daemon runs as root: agents never do. In a workspace a person owns they run as "
        f"that person; in a root-owned workspace as {who}, through an id-mapped mount so "
        "files stay root's. Consequence: a bug in the daemon itself (the gate, the sockets it "
        "serves to sandboxes) would be a bug in a root process",
        "run the daemon as an ordinary user (pilothouse as that user), and keep projects in "
        "folders that user owns",
    )  # fmt: skip


def run_checks(paths: Any, config: Any = None) -> list[Finding]:
    """All checks, in the order a person reads them. config is accepted for future checks."""
    findings = [check_bwrap(), check_userns(), check_bridge(), check_agent_identity()]
    findings.extend(check_docker())
    findings += [check_cgroups(), check_nvml(), check_disk(paths)]
    if not os.access(BWRAP, os.X_OK) and all(
        f.status != "ok" for f in findings if f.name == "docker"
    ):
        findings.append(Finding(
            "sandbox", "error", "neither bubblewrap nor Docker can run sandboxes here",
            "install bubblewrap (preferred) or start Docker",
        ))  # fmt: skip
    return findings
