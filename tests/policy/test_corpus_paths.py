"""The shared corpora through agent.sock (`ph-ask` inside a real bubblewrap run) give the gate's
decisions: the same decide_network and evaluate_exec answer there as in the gate and `policy
check`. Cases whose answer is "ask" are left out (they would wait for a person), as are URL and
resolve cases (ph-ask takes host:port and never resolves)."""

from __future__ import annotations

import json
import shlex
import tomllib
from pathlib import Path

from tests.conftest import CORPUS, Daemon, needs_bwrap

NET = tomllib.loads((CORPUS / "network_cases.toml").read_text())
EXEC = tomllib.loads((CORPUS / "exec_cases.toml").read_text())


def _list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


@needs_bwrap
def test_both_corpora_through_agent_sock(home: Path, daemon_env: dict, workspace: Path) -> None:
    n, e = NET["policy"], EXEC["policy"]
    Path(daemon_env["PILOTHOUSE_CONFIG"]).write_text(
        f'[profiles.corpus]\ncommand = ["true"]\nsandbox = "bwrap"\n[profiles.corpus.network]\n'
        f'default = "{n["default"]}"\nports = {n["ports"]}\nallow = {_list(n["allow"])}\n'
        f'deny = {_list(n["deny"])}\n[profiles.corpus.exec]\ndefault = "{e["default"]}"\n'
        f'allow = {_list(e["allow"])}\nask = {_list(e["ask"])}\nforbid = {_list(e["forbid"])}\n')
    net = [c for c in NET["case"] if "connect" in c and not c.get("resolve") and c["expect"] != "ask"]
    exe = [c for c in EXEC["case"] if c["expect"] != "ask"]
    script = "; ".join(
        [f"ph-ask net {shlex.quote(c['connect'])} >/dev/null 2>&1; echo N$?" for c in net]
        + [f"ph-ask exec -- {shlex.quote(c['command'])} >/dev/null 2>&1; echo E$?" for c in exe])
    d = Daemon(home, daemon_env)
    d.start()
    try:
        out = d.cli("run", "corpus", "-w", str(workspace), "--wait", "--", "sh", "-c", script,
                    check=False, timeout=60).stdout.split()
    finally:
        d.stop()
    codes = [line for line in out if line[:1] in "NE"]
    assert len(codes) == len(net) + len(exe), out
    for case, code in zip(net + exe, codes, strict=True):
        want = "0" if case["expect"] == "allow" else "1"  # deny and reject both refuse
        assert code[1:] == want, (case, code)
