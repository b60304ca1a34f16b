"""An allow the store cannot record must not take effect, the first time or on a retry.

The flood control (console/daemon/floods.py) marks a (run, kind, subject, decision) key as
"seen" in admit(), before the caller records the event. When that record fails, the action is
refused, but the key stays seen: a retry within the same second is admitted as a "repeat" that
goes into the bulk summary row, and is allowed without any security record at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap
from tests.core.failing_store import start_run, store_failing, wait_file
from tests.gate.support import Origin


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()  # a real HTTP origin on 127.0.0.1 that lists what reached it
    yield server
    server.close()


def _daemon(home: Path, env: dict[str, str], port: int) -> Daemon:
    (home / "config.toml").write_text(
        '[profiles.p]\ncommand = ["true"]\n\n'
        '[profiles.p.exec]\nallow = ["echo ok"]\n\n'
        f'[profiles.p.network]\ndefault = "deny"\nallow = ["127.0.0.1:{port}"]\n')
    d = Daemon(home, env)
    d.start()
    return d


@needs_bwrap
def test_a_rule_allowed_exec_that_cannot_be_recorded_is_refused_on_retry_too(
        home: Path, daemon_env: dict[str, str], workspace: Path,
        origin: Origin) -> None:
    d = _daemon(home, daemon_env, origin.port)
    try:
        script = ("while [ ! -e go ]; do sleep 0.02; done; "
                  "for i in 1 2 3 4 5 6; do ph-ask exec -- echo ok >/dev/null 2>&1; "
                  "echo ask$i=$? >> out.txt; done; touch done")
        start_run(d, "p", workspace, script)
        with store_failing(d):
            (workspace / "go").touch()
            wait_file(workspace / "done")
        answers = (workspace / "out.txt").read_text().split()
        allowed = [a for a in answers if a.endswith("=0")]
        assert not allowed, (f"allowed while the store could not record any of them: {answers}")
    finally:
        d.stop()


@needs_bwrap
def test_a_rule_allowed_connection_that_cannot_be_recorded_is_refused_on_retry_too(
        home: Path, daemon_env: dict[str, str], workspace: Path,
        origin: Origin) -> None:
    port = origin.port
    d = _daemon(home, daemon_env, port)
    try:
        curl = f"curl -sS -m 10 -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}/"
        script = ("while [ ! -e go ]; do sleep 0.02; done; "
                  f"for i in 1 2 3 4 5 6; do echo curl$i=$({curl} 2>/dev/null) >> out.txt; done; "
                  "touch done")
        start_run(d, "p", workspace, script)
        with store_failing(d):
            (workspace / "go").touch()
            wait_file(workspace / "done")
        answers = (workspace / "out.txt").read_text().split()
        assert not origin.requests, (f"{len(origin.requests)} requests reached the server while the store "
                                   f"could not record any decision: {answers}")
    finally:
        d.stop()
