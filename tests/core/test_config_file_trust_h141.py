"""Review h141 (follow-up): the daemon took a config file another user could change, and
credited its reload to the file's owner. Whoever writes that file sets every run's sandbox,
command, image and rules: code run as the daemon's user (root, or the docker group). Now the
daemon refuses, at start and at a reload, a file or a folder above it that is not its user's
(or root's) or that its group or others may write (a sticky folder such as /tmp is allowed),
and says what to do; the old policy stays in force at a reload."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from console.config.file_trust import check_config_file
from console.config.schema import ConfigError
from tests.conftest import Daemon
from tests.core.reloading import reload_in_force

NOBODY = 65534
GOOD = '[defaults]\napproval_timeout = "90s"\n'


def _file(folder: Path, mode: int = 0o644) -> Path:
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(GOOD)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o666, 0o664, 0o646])
def test_a_file_others_may_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = _file(tmp_path / "c", mode)
    with pytest.raises(ConfigError) as caught:
        check_config_file(path)
    assert "can be written by" in str(caught.value) and "chmod go-w" in str(caught.value)


def test_a_folder_above_others_may_write_is_refused_unless_sticky(tmp_path: Path) -> None:
    path = _file(tmp_path / "open" / "c")
    (tmp_path / "open").chmod(0o777)
    with pytest.raises(ConfigError, match=r"open can be written by its group and others"):
        check_config_file(path)
    (tmp_path / "open").chmod(0o1777)  # as /tmp: nobody else may rename what is ours in it
    check_config_file(path)


def test_a_file_or_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path / "c")
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(ConfigError, match=f"owned by uid {NOBODY}"):
        check_config_file(path, uid=os.geteuid() or 1000)
    os.chown(path, os.geteuid(), os.getegid())
    os.chown(path.parent, NOBODY, NOBODY)
    with pytest.raises(ConfigError, match=f"c is owned by uid {NOBODY}"):
        check_config_file(path, uid=os.geteuid() or 1000)


def test_a_link_to_a_file_in_an_open_folder_is_refused(tmp_path: Path) -> None:
    target = _file(tmp_path / "open")
    (tmp_path / "open").chmod(0o777)
    (tmp_path / "mine").mkdir(mode=0o700)
    link = tmp_path / "mine" / "config.toml"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="open can be written"):
        check_config_file(link)


def test_a_missing_file_and_a_private_one_pass(tmp_path: Path) -> None:
    check_config_file(tmp_path / "nothing-here.toml")
    check_config_file(_file(tmp_path / "c", 0o600))


def test_the_daemon_refuses_to_start_on_such_a_file(home: Path, daemon_env: dict[str, str]) -> None:
    config = Path(daemon_env["PILOTHOUSE_CONFIG"])
    config.write_text(GOOD)
    config.chmod(0o666)
    result = Daemon(home, daemon_env).cli("ps", check=False)
    assert result.returncode != 0
    assert "not taken" in result.stderr and "chmod go-w" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_reload_of_such_a_file_keeps_the_old_policy(home: Path, daemon_env: dict[str, str]) -> None:
    config = Path(daemon_env["PILOTHOUSE_CONFIG"])
    config.write_text(GOOD)
    d = Daemon(home, daemon_env)
    try:
        d.cli("ps")
        config.write_text('[defaults]\napproval_timeout = "30s"\n')
        config.chmod(0o666)
        refused = d.cli("reload", check=False)
        assert refused.returncode != 0 and "not taken" in refused.stderr, refused
        assert "Traceback" not in refused.stderr
        changes = json.loads(d.cli("history", "--kind", "policy.changed", "--json").stdout)
        assert not [c for c in changes if c["data"].get("cause") == "reload"], changes
        config.chmod(0o644)
        # In force now (the watcher may have taken it in the moment before the chmod).
        taken, row = reload_in_force(d)
        assert any("approval_timeout" in line for line in row["data"]["diff"]), (taken, row)
    finally:
        d.cli("daemon", "stop", check=False)  # the CLI started it: d.stop() has no process
