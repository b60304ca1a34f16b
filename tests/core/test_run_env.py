"""Variables a profile names in `env` come from the shell that ran `pilothouse run` (falling back
to the daemon's); a missing one is a note on the run, not a silent absence."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import BIN, Daemon, needs_bwrap


@needs_bwrap
def test_env_comes_from_the_caller_and_a_missing_one_is_noted(home: Path, daemon_env: dict,
                                                              workspace: Path) -> None:
    Path(daemon_env["PILOTHOUSE_CONFIG"]).write_text(
        '[profiles.envy]\ncommand = ["true"]\nsandbox = "bwrap"\n'
        'env = ["PH_TEST_TOKEN", "PH_TEST_MISSING"]\n')
    d = Daemon(home, {**daemon_env, "PH_TEST_TOKEN": "from-the-daemon"})
    d.start()
    try:
        caller = {**daemon_env, "PH_TEST_TOKEN": "from-the-caller"}
        out = subprocess.run(
            [str(BIN / "pilothouse"), "run", "envy", "-w", str(workspace), "--wait", "--", "sh", "-c",
             'echo token=$PH_TEST_TOKEN missing=${PH_TEST_MISSING-unset}'],
            env=caller, capture_output=True, text=True, timeout=60)
        assert "token=from-the-caller" in out.stdout and "missing=unset" in out.stdout, out
        (run,) = json.loads(d.cli("ps", "--all", "--json").stdout)
        notes = run.get("notes") or (run.get("info") or {}).get("notes") or []
        assert any("PH_TEST_MISSING" in n for n in notes), run
    finally:
        d.stop()
