"""The deployment that matters most: a daemon running as a normal user (not root).

Run from a root test process by switching to an unprivileged uid in a child: bwrap needs
unprivileged user namespaces, the bridge helper must join the user namespace that owns the
sandbox's network namespace, and limits fall back to what that user can set.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox.host_listeners import (
    HostListener,
    failed_inside_works_outside,
    host_address,
    listening,
    probe_script,
)

REPO = Path(__file__).resolve().parents[2]

# The direct way out, tried against listeners on the host (never a public address).
DIRECT = "busybox nc -w 2 {host} {port} </dev/null"

SCRIPT = r"""
import asyncio, json, sys
from pathlib import Path
from console.sandbox.base import SandboxSpec, Limits, prepare_run_dir
from console.sandbox.bwrap import BwrapBackend
from console.sandbox.bridge import open_bridge_listener, serve_bridge

async def main():
    base = Path(sys.argv[1])
    ws = base / "ws"; ws.mkdir()
    rd = base / "runs" / "u1"; prepare_run_dir(rd)
    servers = []
    async def gate(r, w):
        w.write(b"via-bridge:" + await r.read(5)); await w.drain(); w.close()
    async def prepare(h):
        servers.append(await serve_bridge(await open_bridge_listener(h.netns_pid), gate))
    spec = SandboxSpec(run_id="u1", profile="t", workspace=ws, run_dir=rd,
        command=["/bin/sh", "-c", "id -u; echo hello | busybox nc -w 3 127.0.0.1 3128; echo;"
                 + sys.argv[2] + "; echo x > out"],
        env={"PATH": "/usr/bin:/bin"}, limits=Limits(memory_bytes=1 << 30, pids=4096))
    h = await BwrapBackend().start(spec, prepare)
    out = (await h.output.read()).decode()
    rc = await h.wait()
    print(json.dumps({"rc": rc, "out": out, "notes": h.notes, "limits": h.limits_enforced,
                      "written": (ws / "out").exists()}))

asyncio.run(main())
"""


def _unprivileged_user() -> pwd.struct_passwd | None:
    for p in pwd.getpwall():
        if 1000 <= p.pw_uid < 60000:
            return p
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


def _python_for_others() -> str | None:
    """An interpreter of our version that other users can execute (ours may sit in /root)."""
    want = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for cand in (sys.executable, f"/usr/bin/{want}", f"/usr/local/bin/{want}"):
        p = Path(cand).resolve()
        if p.exists() and all(os.stat(d).st_mode & 0o001 for d in p.parents):
            return str(p)
    return None


@pytest.fixture
def host_listeners() -> Iterator[list[HostListener]]:
    addr = host_address()
    if addr is None:
        pytest.skip("this host has no IPv4 address besides loopback to aim at")
    with listening([(addr, "host"), ("127.0.0.1", "loopback")]) as listeners:
        yield listeners


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")
def test_bwrap_and_bridge_as_an_unprivileged_user(host_listeners):
    if not shutil.which("bwrap") or not shutil.which("busybox"):
        pytest.skip("needs bwrap and busybox")
    user = _unprivileged_user()
    python = _python_for_others()
    if user is None or python is None:
        pytest.skip("no unprivileged user or no python3 it can run")
    site = sysconfig.get_paths()["purelib"]
    if not all(os.stat(d).st_mode & 0o001 for d in Path(site).parents):
        pytest.skip(f"{site} is not readable by other users")
    base = Path(tempfile.mkdtemp(prefix="ph-unpriv-"))
    try:
        os.chmod(base, 0o755)
        os.chown(base, user.pw_uid, user.pw_gid)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(base),
            "PILOTHOUSE_HOME": str(base / "home"),
            "PYTHONPATH": f"{REPO}:{site}",
        }
        probes = probe_script(DIRECT, host_listeners)
        r = subprocess.run(
            [python, "-c", SCRIPT, str(base), probes], env=env, cwd=base, capture_output=True, text=True,
            user=user.pw_uid, group=user.pw_gid, extra_groups=[], timeout=120,
        )  # fmt: skip
        if "setting up uid map" in r.stderr or "No permissions to create new namespace" in r.stderr:
            pytest.skip(f"unprivileged user namespaces are off here: {r.stderr[-300:]}")
        assert r.returncode == 0, r.stderr[-3000:]
        res = json.loads(r.stdout.strip().splitlines()[-1])
        out = res["out"]
        assert res["rc"] == 0, out
        assert out.splitlines()[0] == str(user.pw_uid)  # the sandbox runs as that user
        assert "via-bridge:hello" in out
        failed_inside_works_outside(out, DIRECT, host_listeners)
        assert res["written"]
        # No writable cgroup for this user here: limits fall back and say so.
        assert res["limits"].get("memory")
    finally:
        shutil.rmtree(base, ignore_errors=True)
