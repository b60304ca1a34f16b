"""A profile rule the store cannot record does not stay in the config file (fail closed).

"Always allow" writes the rule into the person's config file, then records policy.changed. When
that record fails, the file is put back as it was: a rule nobody recorded must not take effect
at the next reload. Everything here is real: the daemon, the file, its lock, the store.

The store is made to fail at exactly that record: the test holds the config file's lock (as
another writer would), so the save waits after the decision is recorded; it then lowers the
daemon's file-size limit (RLIMIT_FSIZE, as a quota would) to the audit witness's current length,
so the next security record cannot be appended, and releases the lock. The config file, shorter
than that limit, can still be written; the record after it cannot.
"""

from __future__ import annotations

import fcntl
import json
import resource
import threading
from pathlib import Path
from typing import Any

from tests.conftest import Daemon, needs_bwrap
from tests.core.test_approvals_e2e import background, wait_pending
from tests.core.test_loop_not_blocked import HOLD_LIMIT_S, wait_until_daemon_opens

CONFIG = '# my settings: keep this comment\n[defaults]\napproval_timeout = "60s"\n'


@needs_bwrap
def test_a_saved_rule_the_store_cannot_record_is_taken_out_of_the_file(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    config = home / "config.toml"
    config.write_text(CONFIG)
    before = config.read_bytes()
    d = Daemon(home, daemon_env)
    d.start()
    try:
        assert d.proc is not None
        t, out = background(d, workspace, "ph-ask exec -- make lint; echo rc=$?")
        req = wait_pending(d)[0]
        witness = next(home.rglob("audit.witness"))
        decided: dict[str, Any] = {}
        with open(config.with_name(config.name + ".lock"), "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # the save waits here, after the decision

            def approve() -> None:
                decided["result"] = d.cli("approve", req["id"], "--scope", "profile", "--yes",
                                          "--json", check=False, timeout=HOLD_LIMIT_S * 2)

            approver = threading.Thread(target=approve)
            approver.start()
            wait_until_daemon_opens(d, config.with_name(config.name + ".lock"))
            limit = witness.stat().st_size
            assert limit > len(before) + 100, "the config must fit under the limit"
            _, hard = resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE)
            resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (limit, hard))
            fcntl.flock(held, fcntl.LOCK_UN)
        approver.join(HOLD_LIMIT_S)
        resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
        result = decided["result"]
        t.join(60)

        # The store refused the record (the failure is real), and the file is as it was. The
        # history is read by a daemon started again: the syncer's witness write may also have
        # met the low limit, and then the writer stopped taking anything (fail closed) until
        # a restart, reads included (a CI run met that).
        d.stop()
        d.start()
        recorded = json.loads(d.cli("history", "--kind", "policy.changed", "--json").stdout)
        assert not [e for e in recorded if e["data"].get("cause") == "profile-rule"], recorded
        assert config.read_bytes() == before, config.read_text()
        # The person is told what happened, why, and what to do, without a traceback.
        assert "Traceback" not in result.stdout + result.stderr, result.stderr
        assert result.returncode == 0, result.stderr
        saved = json.loads(result.stdout)["saved"]
        error = saved.get("error") or ""
        assert "not saved" in error and "could not be recorded" in error, saved
        assert str(config) in error and "as it was" in error, saved
        assert "file" not in saved, "a rule that was taken out is not reported saved to a file"
    finally:
        d.stop()
