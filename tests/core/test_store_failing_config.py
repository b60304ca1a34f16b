"""Config changes while the store cannot record them: refused (the old policy stays), said
plainly, and not forgotten once the store records again."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Daemon, read_until
from tests.core.failing_store import store_failing

OLD = '[profiles.p]\ncommand = ["true"]\n\n[profiles.p.exec]\nallow = ["make deploy"]\n'
NEW = '[profiles.p]\ncommand = ["true"]\n\n[profiles.p.exec]\nforbid = ["make deploy"]\n'


def _decides(d: Daemon) -> str:
    return json.loads(d.cli("policy", "check", "p", "make deploy", "--json").stdout)["action"]


def _start(home: Path, env: dict[str, str]) -> Daemon:
    (home / "config.toml").write_text(OLD)
    d = Daemon(home, env)
    d.start()
    assert _decides(d) == "allow"
    return d


def test_a_reload_the_store_cannot_record_says_so_plainly(home: Path,
                                                         daemon_env: dict[str, str]) -> None:
    d = _start(home, daemon_env)
    try:
        with store_failing(d):
            (home / "config.toml").write_text(NEW)
            out = d.cli("reload", check=False)
        assert out.returncode != 0, out
        assert "Traceback" not in out.stderr, out.stderr
        assert "failed inside the daemon" not in out.stderr and "StoreError" not in out.stderr, \
            out.stderr
        assert "could not be recorded" in out.stderr, out.stderr
    finally:
        d.stop()


def test_a_saved_file_the_store_could_not_record_is_not_forgotten(
        home: Path, daemon_env: dict[str, str]) -> None:
    """The person saves a stricter file while the store fails: the daemon's watcher sees it,
    cannot record it, and keeps the old policy (fail closed). Once the store records again the
    file must either be taken (it is what the person saved) or `status` must say it is not in
    force; the daemon must not silently go on with a policy that is in no file."""
    d = _start(home, daemon_env)
    try:
        with store_failing(d):
            # The watcher compares size and mtime in ns: NEW is longer than OLD, so it is seen.
            (home / "config.toml").write_text(NEW)
            # The watcher looks once a second: wait until status names the change it could
            # not record, or (as this test always did) three looks.
            read_until(lambda: json.loads(d.cli("status", "--json").stdout).get("config_error"),
                       bool, timeout=3)
            assert _decides(d) == "allow"  # refused while it cannot be recorded: fine
        # The store records again; the watcher tries the file again at its next look. Read
        # until the file is in force, or as things stand after ten more looks.
        status, in_force = read_until(lambda: (d.cli("status", "--json"), _decides(d)),
                                      lambda got: got[1] == "deny", timeout=10)
        told = json.loads(status.stdout).get("config_error")
        assert in_force == "deny" or told, (
            f"the file says deny, the daemon decides {in_force!r}, and status says nothing: "
            f"{status.stdout}")
    finally:
        d.stop()
