"""The Docker backend attacked from the agent's side toward the host (review h140).

- AF_VSOCK: not scoped by network namespaces. `network_mode=none` (and bubblewrap's fresh
  network namespace) leave it open, and our seccomp profile replaces Docker's default, which
  refuses it. On a virtual machine the sandbox reaches the hypervisor's vsock services (CID 2),
  past the gate; on a host that runs VMs, their guests' listeners. Nothing is connected here.
- The json-file log of the container: every byte the agent prints went to
  /var/lib/docker/containers/ID/ID-json.log, unbounded while the run lives (the host's disk).
- An image's VOLUME (an image the person built from a Dockerfile the agent wrote): writable under
  a read-only root, on the host's disk, unbounded while the run lives (h133 removed it after).
"""

from __future__ import annotations

import os

import pytest

from tests.sandbox.hostile_kit import give

VSOCK_PROBE = r"""
import socket
try:
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    print("vsock: ALLOWED")
except OSError as e:
    print("vsock: refused", e.errno)
"""


@pytest.mark.skipif(not os.path.exists("/dev/vsock"), reason="no vsock transport on this host")
@pytest.mark.parametrize("backend", ["bwrap_box", "docker_box"])
async def test_vsock_sockets_are_refused(backend, request):
    box = request.getfixturevalue(backend)
    kw = {"image": request.getfixturevalue("python_ref")} if backend == "docker_box" else {}
    (box.workspace / "probe.py").write_text(VSOCK_PROBE)
    give(box, box.workspace)
    r = await box.run("python3 probe.py 2>&1 || /usr/bin/python3 probe.py 2>&1", **kw)
    assert "vsock:" in r.out, r.out
    assert "ALLOWED" not in r.out, r.out


LOG_BOUND = 16 << 20


async def test_the_containers_log_on_the_hosts_disk_is_bounded(docker_box):
    h = await docker_box.start("head -c 48000000 /dev/zero")
    try:
        n = 0
        while chunk := await h.output.read(1 << 20):
            n += len(chunk)
        await __import__("asyncio").to_thread(h.container.reload)
        size = os.path.getsize(h.container.attrs["LogPath"])
    finally:
        await h.kill()
    assert n == 48000000
    assert size <= 2 * LOG_BOUND, f"the container's log holds {size} bytes on the host's disk"


async def test_an_images_volume_is_bounded_while_the_run_lives(docker_box):
    from tests.sandbox.test_handoff_unmount_h133 import _volume_image

    image = _volume_image()
    r = await docker_box.run("grep ' /data ' /proc/mounts; ls -ld /data; touch /data/x && echo W",
                             image=image)
    assert " /data tmpfs " in r.out, f"/data is on the host's disk, unbounded: {r.out}"
    assert "W" in r.out.split(), r.out  # still writable, as the image asked


def test_held_the_config_keeps_our_own_labels_over_the_images(docker_box):
    """An image's labels (pilothouse.owner / pilothouse.run spoofed) cannot replace ours: the
    engine merges the container's labels over the image's, ours set every time."""
    from console.sandbox.docker import LABEL_OWNER, LABEL_RUN, ImageInfo

    kw = docker_box.backend.container_config(docker_box.spec("true"),
                                             ImageInfo("x", True, False), (1000, 1000))
    assert {LABEL_RUN, LABEL_OWNER} <= set(kw["labels"])


def test_an_images_volume_never_replaces_a_tmpfs_of_ours(docker_box):
    """An image VOLUME at HOME, /tmp or a pinned HOME folder (~/.claude) leaves our tmpfs as it
    is (mode 0700, the agent's): only a path no mount or tmpfs of ours is becomes a volume's."""
    from console.sandbox.base import Mount
    from console.sandbox.docker import INSIDE_HOME, ImageInfo

    spec = docker_box.spec("true")
    pinned = f"{INSIDE_HOME}/.claude"
    spec.extra_mounts = [*spec.extra_mounts, Mount(spec.run_dir, f"{pinned}/settings.json")]
    info = ImageInfo("x", True, False, None, (pinned, INSIDE_HOME, "/tmp", "/data"))
    tmpfs = docker_box.backend.container_config(spec, info, (1000, 1000))["tmpfs"]
    assert "mode=0700" in tmpfs[pinned] and "mode=0700" in tmpfs[INSIDE_HOME], tmpfs
    assert "mode=1777" in tmpfs["/tmp"] and "size=512m" in tmpfs["/data"], tmpfs


def test_an_attach_on_a_connection_dockerd_closed_is_tried_once_more():
    """docker-py reuses a pooled connection that dockerd may have closed: the attach before a
    container's start failed once in a full run of the suite (RemoteDisconnected). A stand-in
    container: the fault cannot be made on demand against the real engine."""
    import requests

    from console.sandbox.stream_pump import attach_output

    class Closing:
        def __init__(self, fails: int) -> None:
            self.fails, self.calls = fails, 0

        def attach(self, **kw):
            self.calls += 1
            if self.calls <= self.fails:
                raise requests.exceptions.ConnectionError("Remote end closed connection")
            return "stream"

    once = Closing(1)
    assert attach_output(once) == "stream" and once.calls == 2
    twice = Closing(2)
    with pytest.raises(requests.exceptions.ConnectionError):
        attach_output(twice)
