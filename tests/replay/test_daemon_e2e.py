"""The whole loop with a real daemon: an agent in a bubblewrap sandbox calls a model through
its run's gate (the only way out), the daemon records each request, the CLI exports the
trace and replays it against the same local server at 1, 2 and 4 lanes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap
from tests.replay.model_server import MODEL, ScriptedModel

pytestmark = needs_bwrap

# The agent: three turns of one conversation and a parallel sub-call, stdlib only, through
# HTTP_PROXY (which the sandbox sets to its bridge to the gate).
AGENT = """
import json, sys, threading, time, urllib.request
url = sys.argv[1] + "/chat/completions"
started = threading.Event()
def call(messages, n, wait=None):
    if wait is not None:
        wait.wait(30)  # the sub-call starts while the first turn streams
    body = json.dumps({"model": "MODEL", "messages": messages, "max_tokens": n, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        started.set()
        return r.read()
system = {"role": "system", "content": "you write careful code " * 30}
side = threading.Thread(target=call, args=([system, {"role": "user", "content": "review"}], 40,
                                           started))
side.start()
msgs = [system, {"role": "user", "content": "fix the bug"}]
for turn in range(3):
    call(msgs, 30 if turn == 0 else 8)
    msgs += [{"role": "assistant", "content": "tok " * 8}, {"role": "user", "content": "more"}]
    time.sleep(0.1)
side.join()
print("agent done")
""".replace("MODEL", MODEL)


@pytest.fixture
def model(home: Path) -> Iterator[ScriptedModel]:
    m = ScriptedModel(itl_s=0.003)
    (home / "config.toml").write_text(
        f'[gate]\ninference = ["127.0.0.1:{m.port}"]\n\n'
        f'[profiles.shell.network]\nallow = ["127.0.0.1:{m.port}"]\n')
    yield m
    m.close()


def test_record_export_replay_through_a_real_daemon(model: ScriptedModel, daemon: Daemon,
                                                    tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "agent.py").write_text(AGENT)
    done = daemon.cli("run", "shell", "-w", str(ws), "--wait", "--", "python3",
                      "/workspace/agent.py", f"http://127.0.0.1:{model.port}/v1",
                      check=False, timeout=120)
    assert done.returncode == 0 and "agent done" in done.stdout, done.stdout + done.stderr
    rows: list = []
    for _ in range(50):  # the daemon writes each row after the answer ended
        rows = json.loads(daemon.cli("trace", "list", "--json").stdout)
        if len(rows) >= 4:
            break
        time.sleep(0.1)
    assert len(rows) == 4
    assert {r["profile"] for r in rows} == {"shell"} and len({r["run_id"] for r in rows}) == 1
    assert {r["lane"].rsplit("/", 1)[1] for r in rows} == {"0", "1"}  # the parallel sub-call
    assert sorted(r["completion_tokens"] for r in rows) == [8, 8, 30, 40]
    assert all(r["prompt_tokens"] > 0 for r in rows)
    assert all(r["start"] < r["first_byte"] <= r["end"] for r in rows)
    assert sum(1 for r in rows if r["think_s"] is not None) == 2

    trace = tmp_path / "agents.jsonl"
    daemon.cli("trace", "export", "--format", "mooncake", "-o", str(trace))
    assert len(trace.read_text().splitlines()) == 4
    rich = tmp_path / "rich.jsonl"
    daemon.cli("trace", "export", "--format", "pilothouse", "-o", str(rich))
    out = daemon.cli("replay", str(rich), "--url", model.v1, "--model", MODEL,
                     "--concurrency", "1,2,4", "--think-time", "cap=0.05", "--json",
                     timeout=120)
    steps = json.loads(out.stdout)["steps"]
    assert [s["concurrency"] for s in steps] == [1, 2, 4]
    # 1 lane plays recorded lane 0 (the conversation, unless the sub-call won the race to
    # the gate); 2 play both lanes; 4 play each twice.
    assert steps[0]["requests"] in (1, 3) and [s["requests"] for s in steps[1:]] == [4, 8]
    assert all(s["errors"] == 0 for s in steps)
    assert all(s["tok_s_out_per_gpu"] > 0 and s["ttft_p50_ms"] > 0 for s in steps)
    report = json.loads(daemon.cli("replay-report", "--json").stdout)
    assert [s["concurrency"] for s in report[0]["steps"]] == [1, 2, 4]
