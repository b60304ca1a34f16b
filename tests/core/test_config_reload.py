"""Config lifecycle: [defaults] reach the built-in profiles; the daemon reloads on `pilothouse
reload`, SIGHUP and a file change, validating first (a bad file keeps the old policy and says
file, line and reason in `status`); each reload is recorded as policy.changed with a diff."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from console.config.load import load
from tests.conftest import Daemon
from tests.core.reloading import reload_in_force

BASE = '[profiles.p]\ncommand = ["true"]\n\n[profiles.p.exec]\nallow = ["ls"]\n'


def test_defaults_reach_built_in_profiles(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[defaults]\napproval_timeout = "300s"\nsandbox = "docker"\n\n'
                    '[profiles.mine]\ncommand = ["x"]\napproval_timeout = "30s"\n')
    cfg = load(path)
    assert cfg.profile("demo").approval_timeout == 300.0
    assert cfg.profile("claude").approval_timeout == 300.0
    assert cfg.profile("demo").sandbox == "docker"
    assert cfg.profile("mine").approval_timeout == 30.0


def decision(d: Daemon, command: str) -> str:
    return json.loads(d.cli("policy", "check", "p", "--json", "--", command).stdout)["decision"]


def changes(d: Daemon) -> list[dict]:
    return json.loads(d.cli("history", "--kind", "policy.changed", "--json").stdout)


def wait_for(test, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if test():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def start_with(home: Path, daemon: Daemon) -> Path:
    path = Path(daemon.env["PILOTHOUSE_CONFIG"])
    path.write_text(BASE)
    daemon.start()
    return path


def test_reload_command_validates_and_records_a_diff(home: Path, daemon_env: dict) -> None:
    d = Daemon(home, daemon_env)
    path = start_with(home, d)
    try:
        assert decision(d, "ls") == "allow" and decision(d, "make") == "ask"
        path.write_text(BASE + 'forbid = ["make"]\n')
        _, change = reload_in_force(d)  # the reload's change, or the watcher's before it
        assert decision(d, "make") == "deny"
        assert '+ p exec forbid "make"' in change["data"]["diff"] and change["actor"]

        path.write_text(BASE + 'forbid = ["make"]\n\n[profiles.p.network]\nallow = ["*.com"]\n')
        bad = d.cli("reload", check=False)
        assert bad.returncode != 0 and f"{path}:" in bad.stderr and "*.com" in bad.stderr
        assert decision(d, "make") == "deny"  # the old policy stays in force
        status = json.loads(d.cli("status", "--json").stdout)
        assert status["config_error"]["file"] == str(path) and status["config_error"]["line"] == 9
        assert "single label" in status["config_error"]["reason"]
    finally:
        d.stop()


def test_sighup_and_a_changed_file_reload(home: Path, daemon_env: dict) -> None:
    d = Daemon(home, daemon_env)
    path = start_with(home, d)
    try:
        path.write_text(BASE + 'forbid = ["make"]\n')
        assert d.proc is not None
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        # checked first: a CLI call to a stopped daemon would start another one
        assert d.proc.poll() is None, "SIGHUP reloads; it does not stop the daemon"
        wait_for(lambda: decision(d, "make") == "deny", "the SIGHUP reload")
        path.write_text(BASE.replace('allow = ["ls"]', 'allow = ["ls", "make"]'))
        wait_for(lambda: decision(d, "make") == "allow", "the reload on a file change")
        causes = [c["data"].get("cause") for c in changes(d)]
        assert "sighup" in causes and "file-change" in causes
    finally:
        d.stop()
