"""Two people decide at once: exactly one wins, the other is told it was already decided; a
person decides right at the timeout: what the person reads is what the agent got. (Held up in
an attack review; kept so it stays so.)"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

from console.client.sync import Client, ClientError
from console.paths import resolve
from tests.conftest import Daemon, needs_bwrap
from tests.core.test_approvals_e2e import background, wait_pending


def decide(d: Daemon, rid: str, allow: bool, scope: str, barrier: threading.Barrier,
           out: dict[str, Any], key: str) -> None:
    with Client(resolve(d.home), autostart=False) as c:
        c.call("hello")
        barrier.wait()
        try:
            out[key] = ("ok", c.call("approval.decide", id=rid, allow=allow, scope=scope))
        except ClientError as exc:
            out[key] = (exc.code, exc.message)


@needs_bwrap
def test_two_deciders_at_once_one_wins(daemon: Daemon, workspace: Path) -> None:
    n = 10
    # The run lives until the grants are read (run-scoped grants end with it), 60 s at most.
    script = " ".join(f"(ph-ask exec -- make t{i}; echo rc{i}=$?) &" for i in range(n)) + (
        " wait; i=0; while [ ! -e read ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done")
    t, out = background(daemon, workspace, script)
    rows = wait_pending(daemon, n)
    results: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        res: dict[str, Any] = {}
        b = threading.Barrier(2)
        # alternate: approve(run) vs deny(run); approve(run) vs approve(10m)
        other = (False, "run") if i % 2 == 0 else (True, "10m")
        th = [threading.Thread(target=decide, args=(daemon, row["id"], True, "run", b, res, "a")),
              threading.Thread(target=decide, args=(daemon, row["id"], *other, b, res, "b"))]
        for x in th:
            x.start()
        for x in th:
            x.join(30)
        results[row["id"]] = {"row": row, **res}
    grants = json.loads(daemon.cli("grants", "--json").stdout)  # while the run lives
    (workspace / "read").write_text("")
    t.join(timeout=60)
    text = out["result"].stdout
    decided = json.loads(daemon.cli("history", "--kind", "approval.decided", "--json",
                                    "--limit", "100").stdout)
    for rid, r in results.items():
        oks = [k for k in ("a", "b") if r[k][0] == "ok"]
        assert len(oks) == 1, r
        loser = "b" if oks == ["a"] else "a"
        assert r[loser][0] == "already-decided", r
        win = r[oks[0]][1]
        mine = [g for g in grants if g["pattern"] == r["row"]["subject"]]
        assert len(mine) == 1 and mine[0]["effect"] == ("allow" if win["allow"] else "deny"), (r, mine)
        assert mine[0]["scope"] == win["scope"]
        rows = [e for e in decided if e["data"].get("id") == rid]
        assert len(rows) == 1 and rows[0]["data"]["allow"] == win["allow"]
        i = r["row"]["subject"][len("make t"):]
        assert f"rc{i}={'0' if win['allow'] else '1'}" in text, (r, text)


@needs_bwrap
def test_a_decision_at_the_timeout_is_what_the_agent_gets(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    Path(daemon_env["PILOTHOUSE_CONFIG"]).write_text(
        '[profiles.quick]\ncommand = ["true"]\napproval_timeout = "1s"\n')
    d = Daemon(home, daemon_env)
    d.start()
    try:
        n = 12
        script = "; ".join(f"ph-ask exec -- make t{i}; echo rc{i}=$?" for i in range(n))
        res: dict[str, Any] = {}

        def go() -> None:
            res["r"] = d.cli("run", "quick", "-w", str(workspace), "--wait", "--", "sh", "-c",
                             script, check=False, timeout=120)

        t = threading.Thread(target=go)
        t.start()
        said: dict[str, tuple[str, str]] = {}
        with Client(resolve(d.home), autostart=False) as c:
            seen: set[str] = set()
            deadline = time.monotonic() + 90
            offsets = [-0.03, -0.01, -0.005, 0.0, 0.002, 0.005]
            while len(seen) < n and time.monotonic() < deadline:
                rows = [r for r in c.call("approvals.list") if r["id"] not in seen]
                if not rows:
                    time.sleep(0.01)
                    continue
                row = rows[0]
                seen.add(row["id"])
                at = row["expires_at"] + offsets[len(seen) % len(offsets)]
                time.sleep(max(0.0, at - time.time()))
                try:
                    said[row["subject"]] = ("ok", str(c.call("approval.decide", id=row["id"],
                                                             allow=True)["allow"]))
                except ClientError as exc:
                    said[row["subject"]] = (exc.code, exc.message)
        t.join(timeout=90)
        text = res["r"].stdout
        got = dict(re.findall(r"rc(\d+)=(\d+)", text))
        for subject, (code, _) in said.items():
            i = subject[len("make t"):]
            if code == "ok":
                assert got.get(i) == "0", (subject, said[subject], text)
            else:
                assert code == "already-decided", said[subject]
                assert got.get(i) == "1", (subject, said[subject], text)
        print(said)
    finally:
        d.stop()
