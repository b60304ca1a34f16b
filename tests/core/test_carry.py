"""A profile's `carry` files reach the sandbox's HOME read-only; keys and workspace files do not
(issue 13, point 5)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN, Daemon, needs_bwrap


@pytest.fixture
def readable_tmp() -> Iterator[Path]:
    """A folder others may enter (pytest's tmp_path is 0700, and the agent runs as another
    uid), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="ph-carry-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@needs_bwrap
def test_carried_files_are_read_only_copies_and_keys_are_refused(home: Path, daemon_env: dict,
                                                                  workspace: Path,
                                                                  readable_tmp: Path) -> None:  # fmt: skip
    conf = readable_tmp / "mirror" / "pip.conf"
    conf.parent.mkdir(mode=0o755)
    os.chmod(conf.parent.parent, 0o755)  # the agent's identity reads it (not under pytest's 0700)
    conf.write_text("[global]\nindex-url = http://127.0.0.1:3141/simple\n")
    (workspace / "planted.conf").write_text("from the workspace\n")
    Path(daemon_env["PILOTHOUSE_CONFIG"]).write_text(
        '[profiles.carrier]\ncommand = ["true"]\nsandbox = "bwrap"\n'
        f'carry = ["{conf}:~/.config/pip/pip.conf", "~/.ssh/config",'
        f' "{workspace}/planted.conf:~/.npmrc"]\n')
    d = Daemon(home, daemon_env)
    d.start()
    try:
        out = subprocess.run(
            [str(BIN / "pilothouse"), "run", "carrier", "-w", str(workspace), "--wait", "--",
             "sh", "-c", "cat ~/.config/pip/pip.conf; (echo x >> ~/.config/pip/pip.conf) "
             "2>/dev/null || echo READ-ONLY; cat ~/.npmrc 2>&1; ls ~/.ssh 2>&1"],
            env=daemon_env, capture_output=True, text=True, timeout=60)
        assert "index-url = http://127.0.0.1:3141/simple" in out.stdout, out
        assert "READ-ONLY" in out.stdout, out
        assert "from the workspace" not in out.stdout, out
        (run,) = json.loads(d.cli("ps", "--all", "--json").stdout)
        notes = run.get("notes") or (run.get("info") or {}).get("notes") or []
        assert any("~/.ssh/config" in n and "keys" in n for n in notes), (notes, out.stderr, run)
        assert any("planted.conf" in n and "workspace" in n for n in notes), notes
        assert conf.read_text().endswith("/simple\n")  # the host file untouched
    finally:
        d.stop()


@pytest.mark.parametrize("bad", ["relative.conf", "/etc/x:/etc/x", "~/a:~/../escape", "~/:~/"])
def test_bad_carry_entries_are_refused_at_load_with_the_reason(tmp_path: Path, bad: str) -> None:
    from console.config.load import ConfigError, load

    f = tmp_path / "config.toml"
    f.write_text(f'[profiles.p]\ncommand = ["true"]\ncarry = ["{bad}"]\n')
    with pytest.raises(ConfigError) as e:
        load(f)
    assert "carry" in str(e.value) and str(f) in str(e.value)


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the workspace to another user")
def test_carry_is_read_as_the_agent_and_a_fifo_cannot_hold_the_daemon(
        home: Path, daemon_env: dict, workspace: Path, readable_tmp: Path) -> None:
    """Found by an attack review: a root-only file carried by root into a workspace another
    user owns would reach that user (the agent runs as them); a FIFO froze the daemon."""
    import pwd

    from tests.sandbox.conftest import _ensure_daemon_user

    mate = _ensure_daemon_user()
    tmp_path = readable_tmp
    secret = tmp_path / "rootonly" / "npmrc"
    secret.parent.mkdir(mode=0o700)
    secret.write_text("ROOTSECRET\n")
    os.chmod(secret, 0o600)
    fifo = tmp_path / "pipe.conf"
    os.mkfifo(fifo, 0o644)
    os.chmod(tmp_path, 0o755)
    os.chown(workspace, mate.pw_uid, mate.pw_gid)  # the agent will run as its owner
    Path(daemon_env["PILOTHOUSE_CONFIG"]).write_text(
        '[profiles.carrier]\ncommand = ["true"]\nsandbox = "bwrap"\n'
        f'carry = ["{secret}:~/.npmrc", "{fifo}:~/.pip.conf"]\n')
    d = Daemon(home, daemon_env)
    d.start()
    try:
        out = subprocess.run(
            [str(BIN / "pilothouse"), "run", "carrier", "-w", str(workspace), "--wait", "--",
             "sh", "-c", "id -u; cat ~/.npmrc 2>&1; echo done"],
            env=daemon_env, capture_output=True, text=True, timeout=60)
        assert "done" in out.stdout, out
        assert "ROOTSECRET" not in out.stdout, out
        assert str(mate.pw_uid) in out.stdout.splitlines(), out
        assert d.cli("status", timeout=10).returncode == 0  # the daemon never hung on the FIFO
        (run,) = json.loads(d.cli("ps", "--all", "--json").stdout)
        notes = run.get("notes") or (run.get("info") or {}).get("notes") or []
        assert any("npmrc" in n and "cannot read" in n for n in notes), notes
        assert any("pipe.conf" in n and "not carried" in n for n in notes), notes
        assert pwd.getpwuid(mate.pw_uid).pw_name == mate.pw_name
    finally:
        d.stop()
