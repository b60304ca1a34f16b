"""Review h169: the open-home checks of review h164 (console.home_trust.open_to_others), attacked with
real second users, a real CLI and a socket another user plants (fake_operator_sock.py).

Found: four homes another user could answer in were taken as closed, so the owner's
`pilothouse approvals` listed that user's made-up request (and `run` would send them the
profile's keys):
- a 0775 home whose group is the owner's primary group, shared as *their* primary group by
  another user (a site where every account's group is `users`): group.gr_mem lists no one, as
  it names supplementary members only, so it read as a user-private group;
- a 0775 home of a user-private group with an ACL naming another user (`setfacl -m u:X:rwx`):
  the mode's group bits are then the ACL's mask, not the group's;
- a home under a sticky shared folder (/tmp) that another user made before its owner's daemon
  did: the client trusts the runtime folder's owner (the daemon's user, for a teammate), and so
  every folder of theirs above it;
- a PILOTHOUSE_HOME that is a link in a folder others may write: realpath hid the link's folder,
  so another user re-pointed it at a home of their own.
"""

from __future__ import annotations

import os
import pwd
import shutil
import struct
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, ensure_group, ensure_user, remove_accounts

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="creating users needs root")

OWNER, OTHER, PRIVATE = "ph-h169a", "ph-h169m", "ph-h169b"
SHARED = "ph-h169u"  # OWNER's and OTHER's primary group, as `users` is on some sites
FAKE = Path(__file__).with_name("fake_operator_sock.py")


def _python_for_others() -> tuple[str, str]:
    site = sysconfig.get_paths()["purelib"]
    want = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not want.exists() or not all(os.stat(d).st_mode & 0o001 for d in Path(site).parents):
        pytest.skip("no interpreter a second user can run with this venv's packages")
    return str(want), site


@pytest.fixture
def users() -> Iterator[None]:
    ensure_group(SHARED)
    for user, group in ((OWNER, ["-g", SHARED, "-N"]), (OTHER, ["-g", SHARED, "-N"]),
                        (PRIVATE, ["-U"])):
        ensure_user(user, "--no-create-home", "--shell", "/usr/sbin/nologin", *group)
    yield
    remove_accounts((OWNER, OTHER, PRIVATE), (SHARED, PRIVATE))


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder of root's under /tmp the second users may reach (pytest's own are 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="ph-h169-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _own(path: Path, user: str, mode: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    path.chmod(mode)
    return path


def _as(user: str) -> list[str]:
    pw = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups"]


def _acl_write_for(path: Path, user: str) -> None:
    """What `setfacl -m u:USER:rwx PATH` writes (setfacl itself need not be installed)."""
    mode, undef = path.stat().st_mode, 0xFFFFFFFF
    entries = [(0x01, (mode >> 6) & 7, undef), (0x02, 7, pwd.getpwnam(user).pw_uid),
               (0x04, (mode >> 3) & 7, undef), (0x10, 7, undef), (0x20, mode & 7, undef)]
    try:
        os.setxattr(path, "system.posix_acl_access",
                    struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries))
    except OSError as exc:
        pytest.skip(f"no POSIX ACLs on {path}'s file system: {exc}")


def _owner_env(base: Path, owner: str, home: Path) -> dict[str, str]:
    cfg = _own(base / f"cfg-{owner}", owner, 0o700)
    (cfg / "config.toml").write_text("# review h169\n")
    os.chown(cfg / "config.toml", pwd.getpwnam(owner).pw_uid, pwd.getpwnam(owner).pw_gid)
    python, site = _python_for_others()
    return {"PILOTHOUSE_HOME": str(home), "PILOTHOUSE_CONFIG": str(cfg / "config.toml"),
            "PATH": "/usr/bin:/bin", "HOME": str(base), "PYTHONPATH": f"{REPO}:{site}",
            "PH_PYTHON": python}


def _owner_talks_to_a_planted_socket(base: Path, owner: str, env: dict[str, str],
                                     planter: str, planted_home: Path,
                                     said: str = "not connecting to") -> None:
    """OTHER plants an operator.sock in `planted_home`/run (a 0755 folder, as a daemon's own);
    the owner's `pilothouse approvals` must not talk to it."""
    kept = _own(base / "kept", planter, 0o755) / "requests"
    fake = subprocess.Popen([*_as(planter), "/usr/bin/python3", "-S", str(FAKE),
                             str(planted_home), str(kept), "755"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert fake.stdout is not None and fake.stdout.readline().strip() == "ready", (
            fake.stderr.read() if fake.stderr else "")
        listed = subprocess.run([*_as(owner), env["PH_PYTHON"], "-m", "console", "approvals",
                                 "--json"], env=env, capture_output=True, text=True, timeout=60)
        assert "FAKE" not in listed.stdout, "the owner listed the other user's made-up request"
        assert not kept.exists(), "the owner's client talked to the other user's socket"
        assert listed.returncode != 0 and said in listed.stderr, listed
        assert "Traceback" not in listed.stderr
    finally:
        fake.kill()
        fake.wait()


def _daemon_refuses(owner: str, env: dict[str, str], said: str = "not started") -> None:
    started = subprocess.Popen([*_as(owner), env["PH_PYTHON"], "-m", "console", "daemon"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        code = started.wait(timeout=20)
    except subprocess.TimeoutExpired:
        started.terminate()
        started.wait()
        pytest.fail("the daemon started in a home another user may write")
    out = started.stdout.read() if started.stdout else ""
    assert code == 2 and said in out, out


@pytest.mark.parametrize("owner", [OWNER, PRIVATE], ids=["shared-primary-group", "acl"])
def test_a_group_writable_home_another_user_may_write_is_open(
        users: None, base: Path, owner: str) -> None:
    """A 0775 home: OWNER's group is OTHER's primary group too; PRIVATE's group is their own,
    and an ACL gives OTHER write."""
    home = _own(base / "home", owner, 0o775)
    if owner == PRIVATE:
        _acl_write_for(home, OTHER)
    env = _owner_env(base, owner, home)
    _daemon_refuses(owner, env)
    _own(home / "run", owner, 0o700)
    _owner_talks_to_a_planted_socket(base, owner, env, OTHER, home)


def test_a_home_another_user_made_first_in_a_sticky_shared_folder_is_not_the_daemons(
        users: None, base: Path) -> None:
    """OWNER's PILOTHOUSE_HOME is /tmp/<name> (here under a 1777 folder of root's, as /tmp), not
    made yet (after a reboot, say); OTHER made it first, with a runtime folder and a socket."""
    shared = _own(base / "tmp", "root", 0o1777)
    home = _own(shared / "ph", OTHER, 0o755)
    env = _owner_env(base, OWNER, home)
    _owner_talks_to_a_planted_socket(base, OWNER, env, OTHER, home)


def test_a_home_through_a_link_another_user_may_swap_is_open(users: None, base: Path) -> None:
    """OWNER's PILOTHOUSE_HOME is a link in a folder any user may write, which OTHER pointed at
    a home of their own; realpath hid the folder the link is in."""
    shared = _own(base / "shared", "root", 0o777)
    theirs = _own(base / "theirs", OTHER, 0o755)
    (shared / "ph").symlink_to(theirs)
    env = _owner_env(base, OWNER, shared / "ph")
    _owner_talks_to_a_planted_socket(base, OWNER, env, OTHER, theirs, said="not using")
    _daemon_refuses(OWNER, env, said="not using")


def test_ordinary_homes_are_still_used(users: None, base: Path) -> None:
    """What held: a 0775 home of a user-private group (no ACL), a home under a sticky folder
    made by its owner, a home reached through a link of root's in root's folder (/home ->
    /data/home) or through a link of the owner's in a sticky folder."""
    private = _own(base / "upg-home", PRIVATE, 0o775)
    shared = _own(base / "tmp", "root", 0o1777)
    under_tmp = _own(shared / "ph", OWNER, 0o700)
    data = _own(base / "data" / "home" / "ph", OWNER, 0o700)
    (base / "home").symlink_to(base / "data" / "home")
    link = shared / "owner-link"
    link.symlink_to(_own(base / "owner-real", OWNER, 0o700))
    os.lchown(link, pwd.getpwnam(OWNER).pw_uid, -1)
    for owner, home in ((PRIVATE, private), (OWNER, under_tmp), (OWNER, base / "home" / "ph"),
                        (OWNER, link)):
        env = _owner_env(base, owner, home)
        try:
            done = subprocess.run([*_as(owner), env["PH_PYTHON"], "-m", "console", "ps"],
                                  env=env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, (home, done.stderr)
        finally:
            subprocess.run([*_as(owner), env["PH_PYTHON"], "-m", "console", "daemon", "stop"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert data.exists()


def test_a_teammate_still_reaches_an_ordinary_users_daemon_in_a_home_of_theirs(
        users: None, base: Path) -> None:
    """What held: OWNER's daemon at a /srv-like home of OWNER's (0755, in root's 0755 folder),
    OTHER in the [team] group: the teammate's client trusts the daemon's user there."""
    home = _own(_own(base / "srv", "root", 0o755) / "pilothouse", OWNER, 0o755)
    env = _owner_env(base, OWNER, home)
    Path(env["PILOTHOUSE_CONFIG"]).write_text(f'[team]\ngroup = "{SHARED}"\n')
    daemon = subprocess.Popen([*_as(OWNER), env["PH_PYTHON"], "-m", "console", "daemon"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    try:
        sock = home / "run" / "operator.sock"
        for _ in range(200):
            if sock.exists() or daemon.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"])
        assert sock.exists(), daemon.stdout.read() if daemon.stdout else ""
        done = subprocess.run([*_as(OTHER), env["PH_PYTHON"], "-m", "console", "ps"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    finally:
        daemon.terminate()
        daemon.wait()


def test_the_daemon_changes_nothing_in_a_home_it_refuses(users: None, base: Path) -> None:
    """`pilothouse daemon` (as a systemd unit runs it) made and chmodded its folders before it
    checked the home: in a root daemon's 0777 home, OTHER's link `data -> <a folder of root's>`
    had root make that folder 0700 (/etc/ssl, say: no one else could read a certificate)."""
    home = _own(base / "home", "root", 0o777)
    victim = _own(base / "roots", "root", 0o755)
    subprocess.run([*_as(OTHER), "ln", "-s", str(victim), str(home / "data")], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    env.update(PILOTHOUSE_HOME=str(home), PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "console", "daemon"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and f"{home} can be written by" in done.stderr, done
    assert victim.stat().st_mode & 0o777 == 0o755, f"{victim}: {victim.stat().st_mode:o}"
    assert sorted(p.name for p in home.iterdir()) == ["data"]
