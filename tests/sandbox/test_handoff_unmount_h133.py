"""The hand-off folder's owner redirects the root daemon's unmount (review h133).

A root daemon hands each run's folder to the agent's uid through
/run/pilothouse-handoff/RUN-TOKEN/run (view.py `_hand_off`). The folder RUN-TOKEN was owned by
that uid, 0700. On a shared daemon that uid is a person with a shell (alice: her run, or root's
run in her workspace). From a mount namespace of her own made before the run (private
propagation: the hand-off mount never reaches it) the `run` folder is a plain folder to her: she
renames it (the mount moves with it, on the host too) and puts a link `run -> /any/mount` in its
place. At the run's end the daemon's `umount2(".../run", MNT_DETACH)`, as root, followed the link
and detached whatever mount she named (here a root-owned tmpfs; /proc, /home, another run's view
as well), and the run's own hand-off mount stayed mounted for good under the name she gave it.

A real root daemon, a real second user (the team tests' `phapprover`), a real bwrap run.

And a Docker run's container was removed without its anonymous volumes: an image's `VOLUME`
is writable under `read_only=True`, so each run left one on the host's disk, holding whatever
the agent wrote there (unbounded, unlike its tmpfs /tmp and HOME), never removed.

Before the fix both tests failed: the victim tmpfs was detached by the daemon, and two volumes
(the image probe's and the run's) were left.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap
from tests.core.test_team import APPROVER, GROUP, _ensure_users, _open_parents

root_only = pytest.mark.skipif(os.getuid() != 0, reason="a root daemon and a real second user "
                                                       "need root")
HANDOFF = "/run/pilothouse-handoff"

# Run by alice inside `unshare -Urm --propagation private`, started before the run: waits for the
# hand-off folder's name, then moves `run` aside and leaves a link to the victim in its place.
PLANT = r"""
import os, sys, time
trigger, victim = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 60
while not os.path.exists(trigger):
    if time.monotonic() > deadline:
        sys.exit("no trigger")
    time.sleep(0.05)
folder = open(trigger).read().strip()
try:
    os.rename(f"{folder}/run", f"{folder}/moved")
    os.symlink(victim, f"{folder}/run")
    print("planted", flush=True)
except OSError as e:
    print("refused", e, flush=True)
"""


def _mount_points() -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]


def _handoff_of(run_id: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for point in _mount_points():
            if point.startswith(f"{HANDOFF}/{run_id}-") and point.endswith("/run"):
                return os.path.dirname(point)
        time.sleep(0.05)
    raise AssertionError(f"no hand-off mount for run {run_id}")


def _ended(d: Daemon, run_id: str, timeout: float = 30) -> None:
    import json

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = json.loads(d.cli("ps", "--all", "--json").stdout)
        if any(r["id"] == run_id and r["state"] not in ("running", "starting") for r in rows):
            time.sleep(1.0)  # its view's close runs as the end is recorded
            return
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not end")


@root_only
@needs_bwrap
def test_the_handoff_owner_cannot_point_the_daemons_unmount_elsewhere(
        home: Path, daemon_env: dict[str, str], workspace: Path, tmp_path: Path) -> None:
    _ensure_users()
    pw = pwd.getpwnam(APPROVER)
    (home / "config.toml").write_text(
        f'[team]\ngroup = "{GROUP}"\napprovers = ["{APPROVER}"]\n'
        '[profiles.p]\ncommand = ["sleep", "60"]\nsandbox = "bwrap"\n'
        '[profiles.p.network]\ndefault = "deny"\n')
    _open_parents(home / "run")
    _open_parents(workspace)
    for path in (workspace, *workspace.iterdir()):
        os.lchown(path, pw.pw_uid, pw.pw_gid)
    victim = tmp_path / "victim"  # a mount of root's that alice cannot unmount herself
    victim.mkdir()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"tmpfs", str(victim).encode(), b"tmpfs", 0, b"size=1m") != 0:
        pytest.skip("cannot mount a tmpfs here")
    (victim / "kept").write_text("root's\n")
    trigger = tmp_path / "trigger"
    os.chmod(tmp_path, 0o755)
    plant = subprocess.Popen(
        ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups",
         "unshare", "-Urm", "--propagation", "private",
         "/usr/bin/python3", "-S", "-c", PLANT, str(trigger), str(victim)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd="/")
    time.sleep(0.5)  # her namespace exists before the run's hand-off is mounted
    d = Daemon(home, daemon_env)
    d.start()
    run_id, folder = "", ""
    try:
        out = d.cli("run", "p", "-w", str(workspace))
        run_id = out.stdout.strip().splitlines()[-1]
        folder = _handoff_of(run_id)
        trigger.write_text(folder)
        said = plant.communicate(timeout=30)[0]
        d.cli("stop", "--kill", run_id)
        _ended(d, run_id)
        assert os.path.ismount(victim) and (victim / "kept").is_file(), (
            f"the daemon unmounted {victim} (alice: {said.strip()})")
        left = [p for p in _mount_points() if p.startswith(f"{folder}/")]
        assert not left, f"the run's hand-off stayed mounted after its end: {left} ({said.strip()})"
    finally:
        if plant.poll() is None:
            plant.kill()
        if run_id:
            d.cli("stop", "--kill", run_id, check=False)
        d.stop()
        for point in sorted((p for p in _mount_points() if folder and p.startswith(f"{folder}/")),
                            key=len, reverse=True):
            libc.umount2(point.encode(), 2)
        if folder:
            subprocess.run(["rm", "-rf", folder], check=False)
        libc.umount2(str(victim).encode(), 2)


# --- Docker: a volume the image declares outlives the run (review h133) -------------------------

VOLUME_IMAGE = "FROM {base}\nRUN mkdir -m 1777 /data\nVOLUME /data\n"  # a cache folder, say


def _volume_image() -> str:
    import io

    from tests.images.build import busybox_image, docker_client_or_skip

    client = docker_client_or_skip()
    base = busybox_image(client)
    image, _ = client.images.build(fileobj=io.BytesIO(VOLUME_IMAGE.format(base=base).encode()),
                                   tag="pilothouse-test/h133-volume:1", rm=True)
    return image.id


def test_an_images_volume_does_not_outlive_the_run(daemon_env: dict[str, str], home: Path,
                                                   workspace: Path) -> None:
    import docker

    image = _volume_image()
    client = docker.from_env()
    # The run marks its /data with a token of its own: another test file running at the same
    # time (make test: -n) makes and removes volumes too (a cold `docker build` of an image
    # with a VOLUME makes one per step), and those are not this run's to count or remove.
    token = f"h133-{os.getpid()}-{time.monotonic_ns()}"
    (home / "config.toml").write_text(
        f'[profiles.v]\ncommand = ["sh", "-c", "echo {token} > /data/mark"]\n'
        f'sandbox = "docker"\nimage = "{image}"\n[profiles.v.network]\ndefault = "deny"\n')
    before = {v.id for v in client.volumes.list()}
    d = Daemon(home, daemon_env)
    d.start()
    try:
        d.cli("run", "v", "-w", str(workspace), "--wait")
    finally:
        d.stop()
    left = [v.id for v in client.volumes.list() if v.id not in before and _marked(v, token)]
    for name in left:
        client.volumes.get(name).remove(force=True)
    assert not left, f"the run's anonymous volume(s) stayed on the host after its end: {left}"


def _marked(volume: object, token: str) -> bool:
    """Whether `volume` is the run's: its /data/mark holds `token`. One whose folder this
    process cannot read (a rootless engine's) counts, as any new volume did before."""
    try:
        mark = Path(volume.attrs["Mountpoint"], "mark")  # type: ignore[attr-defined]
        return token in mark.read_text()
    except FileNotFoundError:
        return False
    except (OSError, KeyError):
        return True
