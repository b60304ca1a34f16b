"""Both backends: output, exit codes, environment, mounts, prepare ordering, stop."""

from __future__ import annotations

import asyncio
import os

from console.sandbox.base import INSIDE_HOME


async def test_output_and_exit_code(sandbox):
    r = await sandbox.run("echo out; echo err >&2; exit 7")
    assert r.rc == 7
    assert "out" in r.out and "err" in r.out


async def test_environment_is_exactly_the_spec_plus_sandbox_basics(sandbox):
    os.environ["PH_HOST_SECRET"] = "leak"
    try:
        r = await sandbox.run("env", env={"PATH": "/usr/bin:/bin", "KEEP": "yes"})
    finally:
        del os.environ["PH_HOST_SECRET"]
    assert "KEEP=yes" in r.out
    assert "PH_HOST_SECRET" not in r.out
    assert f"HOME={INSIDE_HOME}" in r.out
    assert "HTTP_PROXY=http://127.0.0.1:3128" in r.out
    assert "/run/pilothouse/bin" in r.out


async def test_workspace_is_writable_and_cwd(sandbox):
    r = await sandbox.run("pwd; echo hello > made.txt; ls /run/pilothouse/bin")
    assert r.rc == 0, r.out
    assert "/workspace" in r.out
    assert (sandbox.workspace / "made.txt").read_text() == "hello\n"
    assert "ph-ask" in r.out


async def test_home_and_tmp_are_writable_and_private(sandbox):
    r = await sandbox.run('echo x > "$HOME/f" && echo y > /tmp/f && cat "$HOME/f" /tmp/f')
    assert r.rc == 0, r.out
    assert "x\ny" in r.out


async def test_prepare_runs_before_the_command(sandbox):
    marker = sandbox.run_dir / "prepared"

    async def prepare(handle):
        assert handle.netns_pid
        await asyncio.sleep(0.3)  # a slow prepare must still win the race
        marker.write_text("yes")

    r = await sandbox.run("cat /run/pilothouse/prepared", prepare=prepare)
    assert r.out.strip() == "yes"


async def test_stop_ends_everything(sandbox):
    h = await sandbox.start("sleep 100 & sleep 100 & echo started; wait")
    line = await asyncio.wait_for(h.output.readline(), 30)
    assert b"started" in line
    pids = h.host_pids()
    assert len(pids) >= 3
    await h.stop(grace=0.5)
    await asyncio.sleep(2)
    alive = [p for p in pids if _alive(p)]
    assert alive == []


async def test_stats(sandbox):
    h = await sandbox.start("echo go; sleep 5")
    await h.output.readline()
    h.stats()
    await asyncio.sleep(0.2)
    s = h.stats()
    assert s["rss_bytes"] and s["rss_bytes"] > 0
    assert s["pids"] >= 1
    await h.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


async def test_bridge_thread_path_leaves_the_daemon_namespace_alone(bwrap_box) -> None:
    """As root the bridge is bound from a throwaway thread inside the sandbox's network
    namespace; the calling process must stay in its own."""
    import os

    from console.sandbox.bridge import open_bridge_listener

    before = os.readlink("/proc/self/ns/net")
    seen = {}

    async def prepare(handle) -> None:
        sock = await open_bridge_listener(handle.netns_pid)
        seen["addr"] = sock.getsockname()
        seen["after"] = os.readlink(f"/proc/{os.getpid()}/task/{os.getpid()}/ns/net")
        sock.close()

    r = await bwrap_box.run("echo ok", prepare=prepare)
    assert "ok" in r.out
    assert seen["addr"] == ("127.0.0.1", 3128)
    assert seen["after"] == before == os.readlink("/proc/self/ns/net")
