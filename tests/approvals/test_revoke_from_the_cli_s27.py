"""A grant can be ended from a shell (s27 review, a note): only the console could revoke one;
`pilothouse grants` listed them and nothing ended them, so a person over SSH without the
console had to wait for the run to end. `pilothouse revoke ID` ends it, recorded with who did
it, and the next ask of that command is asked again; an unknown id is one line, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Daemon, needs_bwrap
from tests.core.test_approvals_e2e import background, wait_pending


@needs_bwrap
def test_revoke_ends_a_grant_and_the_command_is_asked_again(daemon: Daemon,
                                                              workspace: Path) -> None:
    t, out = background(daemon, workspace, "ph-ask exec -- make build; echo rc1=$?; "
                                           "for i in $(seq 300); do [ -e go ] && break; "
                                           "sleep 0.1; done; "  # until the grant is revoked
                                           "ph-ask exec -- make build; echo rc2=$?")
    first = wait_pending(daemon)[0]
    decided = json.loads(daemon.cli("approve", first["id"], "--scope", "run", "--yes",
                                    "--json").stdout)
    grant_id = decided["grants"][0]["id"]
    assert [g["id"] for g in json.loads(daemon.cli("grants", "--json").stdout)] == [grant_id]
    revoked = daemon.cli("revoke", grant_id)
    assert revoked.returncode == 0 and f"revoked grant {grant_id}" in revoked.stdout, revoked
    assert json.loads(daemon.cli("grants", "--json").stdout) == []
    (workspace / "go").write_text("")
    again = wait_pending(daemon)  # the second `make build` is asked: the grant is gone
    daemon.cli("deny", again[0]["id"])
    t.join(timeout=60)
    assert "rc1=0" in out["result"].stdout and "rc2=1" in out["result"].stdout, out
    history = json.loads(daemon.cli("history", "--kind", "grant.revoked", "--json").stdout)
    assert history and history[0]["data"]["grant_id"] == grant_id


def test_revoking_an_unknown_grant_says_so(daemon: Daemon) -> None:
    done = daemon.cli("revoke", "gnope", check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert 'no live grant "gnope"' in done.stderr and "pilothouse grants" in done.stderr, done
