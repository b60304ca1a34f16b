"""sandbox = "none": the run's environment is the host's, not a sandbox's. Before, it named
/run/pilothouse/agent.sock, /workspace and HOME=/home/agent (paths that exist only inside a
sandbox), so every ph-ask and hook call failed, and its proxy variables sent traffic to
whatever listens on the host's 127.0.0.1:3128. Found by an attack review."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from tests.conftest import Daemon

SCRIPT = ('echo "home=$HOME ws=$PILOTHOUSE_WORKSPACE proxy=${HTTP_PROXY-unset}/${https_proxy-unset}"; '
          "ph-ask exec -- ls >/dev/null; echo rc=$?")


def test_an_unsandboxed_run_can_ask_and_sees_host_paths(home: Path, daemon_env: dict[str, str],
                                                         workspace: Path) -> None:
    Path(daemon_env["PILOTHOUSE_CONFIG"]).write_text(
        '[profiles.bare]\ncommand = ["true"]\nsandbox = "none"\n\n[profiles.bare.exec]\nallow = ["ls"]\n')
    d = Daemon(home, daemon_env)
    d.start()
    try:
        r = d.cli("run", "bare", "-w", str(workspace), "--wait", "--", "sh", "-c", SCRIPT,
                  check=False)
    finally:
        d.stop()
    assert "rc=0" in r.stdout, r.stdout + r.stderr  # the rule's allow reached it
    assert f"home={pwd.getpwuid(os.getuid()).pw_dir} " in r.stdout, r.stdout
    assert f"ws={workspace} " in r.stdout, r.stdout
    assert "proxy=unset/unset" in r.stdout, r.stdout
