"""Review s17 (daemon): an agent's exec asks were decided on the daemon's loop. A 4 KiB command
of 2,000 parts (`a|a|...`) is about 0.3-0.55 s of CPU under a profile of twenty rules or the
built-in claude profile; agent.sock lets a run ask 64 at once, then 10 a second, so one agent
in its sandbox held every run's asks, every gate and every console (a real daemon: 40 asks
held the owner's `hello` 16.8 s; at 10 a second the loop never catches up). Secure: the
evaluation runs off the loop, one at a time per run, on a copy of the grants. Measured by where
the CPU goes (the loop's thread against the daemon's other threads), not by a clock.

A real daemon, a real bubblewrap sandbox, the real agent.sock. Nothing leaves the machine.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Daemon, needs_bwrap
from tests.core.loop_share import LoopShare

RULES = ", ".join(f'"tool{i} sub{i}"' for i in range(20))
CONFIG = f"""
[profiles.t]
command = ["true"]
[profiles.t.exec]
default = "deny"
allow = ["a", {RULES}]
[profiles.t.network]
default = "deny"
"""

ASKER = r"""
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["PILOTHOUSE_AGENT_SOCK"])
f = s.makefile("rwb", buffering=0)
decisions = {}
for i in range(int(sys.argv[1])):
    # each ask its own command: the reader caches what it read, and a repeat costs nothing
    command = ("a|" * 2000)[:3990].rstrip("|") + f"|a {i}"
    f.write((json.dumps({"v": 1, "id": i, "op": "ask",
                         "args": {"kind": "exec", "subject": command}}) + "\n").encode())
    answer = json.loads(f.readline())["result"]["decision"]
    decisions[answer] = decisions.get(answer, 0) + 1
print("decisions=" + json.dumps(decisions), flush=True)
"""



@needs_bwrap
def test_an_agents_costly_asks_are_decided_off_the_daemons_loop(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    (home / "config.toml").write_text(CONFIG)
    (workspace / "asker.py").write_text(ASKER)
    d = Daemon(home, daemon_env)
    d.start()
    assert d.proc is not None
    pid = d.proc.pid
    try:
        with LoopShare(pid) as share:
            outs = share.repeat_until(100, lambda: d.cli(
                "run", "t", "-w", str(workspace), "--wait", "--", "python3", "asker.py", "20",
                timeout=300).stdout)
        for out in outs:
            line = next(x for x in out.splitlines() if x.startswith("decisions="))
            assert json.loads(line.split("=", 1)[1]) == {"allow": 20}, out
        share.assert_off_loop("one agent's asks", least=100, at_most=1 / 3)
    finally:
        d.stop()
