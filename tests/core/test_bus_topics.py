"""Every event a live daemon publishes belongs to one of protocol.Topic: a run, a gate's
decision and an approval, watched with "*", carry no topic the enum leaves out."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from console.client.sync import Client
from console.paths import resolve
from console.protocol import Topic, topic_of
from tests.conftest import Daemon, needs_bwrap


@needs_bwrap
@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed (apt-get install curl)")
def test_published_events_all_have_a_listed_topic(home: Path, daemon_env: dict[str, str],
                                                  workspace: Path) -> None:
    (home / "config.toml").write_text(
        '[profiles.web]\ncommand = ["true"]\n'
        '[profiles.web.network]\ndefault = "deny"\ndeny = ["**.blocked.invalid"]\n')
    d = Daemon(home, daemon_env)
    d.start()
    seen: list[dict] = []
    ready = threading.Event()

    def watch() -> None:
        with Client(resolve(home), autostart=False) as c:
            stream = c.stream("subscribe", topics=["*"])
            next(stream)  # "subscribed"
            ready.set()
            for _kind, ev in stream:
                seen.append(ev)
                if ev.get("kind") == "run.state" and ev["run"]["state"] in ("exited", "failed"):
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        assert ready.wait(10)
        script = ("curl -sS -m 20 -o /dev/null http://x.blocked.invalid/; "
                  "ph-ask exec -- make topics; echo rc=$?")
        result: dict = {}
        runner = threading.Thread(target=lambda: result.update(run=d.cli(
            "run", "web", "-w", str(workspace), "--wait", "--", "sh", "-c", script, check=False)))
        runner.start()
        deadline = time.monotonic() + 30
        while not (pending := json.loads(d.cli("approvals", "--json").stdout)):
            assert time.monotonic() < deadline, d.log()
            time.sleep(0.1)
        d.cli("deny", pending[0]["id"])
        runner.join(60)
        watcher.join(30)
    finally:
        d.stop()
    assert "rc=1" in result["run"].stdout
    topics = {topic_of(str(e.get("kind"))) for e in seen}
    assert {"run", "net", "approval"} <= topics, sorted(topics)
    assert topics <= {t.value for t in Topic}, sorted(topics - {t.value for t in Topic})
