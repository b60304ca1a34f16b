"""`policy check` answers for one run as that run's gate and agent.sock do (review s17).

Grants of scope once, run and timed belong to one run. The daemon's policy.check took a run,
but the CLI had no way to name one, so `policy check demo 'make build'` said "ask" while the
run's next `make build` was allowed by the grant a person had just made. `--run RUN` is that
run's decision now; a run that is not live, or of another profile, is an error, not a guess.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Daemon, needs_bwrap
from tests.core.test_approvals_e2e import background, wait_pending


@needs_bwrap
def test_check_with_run_sees_that_runs_grant(daemon: Daemon, workspace: Path) -> None:
    t, out = background(daemon, workspace, "ph-ask exec -- make build; echo rc=$?; sleep 30")
    first = wait_pending(daemon)[0]
    run_id = first["run_id"]
    daemon.cli("approve", first["id"], "--scope", "run", "--json")

    def check(*extra: str) -> dict:
        done = daemon.cli("policy", "check", "demo", *extra, "--json", "--", "make", "build")
        return json.loads(done.stdout)

    try:
        assert check("--run", run_id)["decision"] == "allow"
        assert check("--run", run_id)["provenance"]["kind"] == "grant"
        assert check()["decision"] == "ask", "no run named: the profile's rules alone"
        human = daemon.cli("policy", "check", "demo", "--run", run_id, "make", "build").stdout
        assert human.startswith("allow") and "grant" in human, human
        wrong = daemon.cli("policy", "check", "shell", "--run", run_id, "make", "build",
                           check=False)
        assert wrong.returncode == 1 and f"run {run_id} is of profile demo" in wrong.stderr
    finally:
        daemon.cli("stop", run_id, "--kill", check=False)
        t.join(timeout=60)
    assert "rc=0" in out["result"].stdout
    gone = daemon.cli("policy", "check", "demo", "--run", run_id, "make", "build", check=False)
    assert gone.returncode == 1 and f"no live run '{run_id}'" in gone.stderr, gone.stderr


def test_check_with_run_needs_the_daemon(daemon: Daemon, tmp_path: Path) -> None:
    cfg = tmp_path / "other.toml"
    cfg.write_text('[profiles.demo]\ncommand = ["true"]\n')
    done = daemon.cli("--config", str(cfg), "policy", "check", "demo", "--run", "k3mx", "ls",
                      check=False)
    assert done.returncode != 0 and "--run" in done.stderr and "Traceback" not in done.stderr
