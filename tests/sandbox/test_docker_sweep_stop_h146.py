"""A daemon stopped while Docker's start sweep is under way (review h146 of s36).

The sweep ran in asyncio's default executor, which asyncio.run joins at the end: a stop with an
engine that accepts and never answers left the process for the Docker client's 60 s timeout.
A stop in the middle of the sweep cancelled its future only: the thread went on removing
containers, and nothing of what it had removed (or removed after) reached the history.
"""

from __future__ import annotations

import json
import signal
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from console.paths import resolve
from console.sandbox.base import owner_key
from tests.conftest import Daemon
from tests.sandbox.test_docker_sweep_at_start_s36 import silent_engine


class FakeEngine(socketserver.ThreadingUnixStreamServer):
    """Just enough of the Docker API for the sweep: version, ping, list, inspect, remove.
    The remove of `hold` waits until `release` is set."""

    daemon_threads = True

    def __init__(self, path: Path, owner: str, runs: list[str], hold: str) -> None:
        self.containers = {f"c{i}" * 8: run for i, run in enumerate(runs)}
        self.owner, self.hold = owner, hold
        self.deleted: list[str] = []
        self.held = threading.Event()
        self.release = threading.Event()
        super().__init__(str(path), _Handler)

    def labels(self, cid: str) -> dict[str, str]:
        return {"pilothouse.run": self.containers[cid], "pilothouse.owner": self.owner}


class _Handler(BaseHTTPRequestHandler):
    server: FakeEngine

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, code: int, body: Any = None) -> None:
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(code)
        self.send_header("Content-Type", "application/json" if body is not None else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?")[0]
        eng = self.server
        if path.endswith("/version"):
            self._answer(200, {"ApiVersion": "1.41", "Version": "24.0.0"})
        elif path.endswith("/_ping"):
            self._answer(200, b"OK")
        elif path.endswith("/containers/json"):
            self._answer(200, [{"Id": c, "Labels": eng.labels(c)} for c in eng.containers
                               if c not in eng.deleted])
        elif path.endswith("/json") and "/containers/" in path:
            cid = path.split("/containers/")[1].split("/")[0]
            self._answer(200, {"Id": cid, "Name": f"/{cid}", "Config": {"Labels": eng.labels(cid)},
                               "State": {"Status": "running"}})
        else:
            self._answer(404, {"message": "no such thing"})

    def do_DELETE(self) -> None:  # noqa: N802
        cid = self.path.split("?")[0].split("/containers/")[1]
        eng = self.server
        if eng.containers[cid] == eng.hold:
            eng.held.set()
            eng.release.wait(30)
        eng.deleted.append(cid)
        self._answer(204)


def _history(d: Daemon) -> list[list[str]]:
    out = json.loads(d.cli("history", "--kind", "sandbox.orphans_removed", "--json").stdout)
    return [h["data"]["removed"] for h in out]


def test_a_stop_does_not_wait_for_an_engine_that_never_answers(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    listener, engine_env = silent_engine(tmp_path)
    d = Daemon(home, {**daemon_env, **engine_env})
    try:
        d.start(timeout=15)
        # before: the process lived on for the client's 60 s and was killed at this timeout
        rc = d.stop(timeout=15)
    finally:
        listener.close()
        d.stop()
    assert rc == 0, (rc, d.log())


def test_a_stop_inside_the_sweep_records_what_it_removed_and_removes_no_more(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    owner = owner_key(resolve(home).runs_dir)
    engine = FakeEngine(tmp_path / "docker.sock", owner, ["r-one", "r-two", "r-three"], "r-two")
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    env = {**daemon_env, "DOCKER_HOST": f"unix://{tmp_path / 'docker.sock'}"}
    d = Daemon(home, env)
    try:
        d.start(timeout=15)
        assert engine.held.wait(15), d.log()  # r-one removed, r-two's removal under way
        assert d.proc is not None
        d.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        engine.release.set()  # r-two's removal ends while the daemon stops
        assert d.stop(timeout=15) == 0, d.log()
        time.sleep(0.5)  # a sweep thread still going would remove r-three now
        removed_by_first = [engine.containers[c] for c in engine.deleted]
        assert removed_by_first == ["r-one", "r-two"], (removed_by_first, d.log())
        engine.containers.clear()  # the next daemon finds no orphan: it records nothing
        d2 = Daemon(home, env)
        d2.start(timeout=15)
        try:
            recorded = _history(d2)
        finally:
            d2.stop()
        assert recorded == [["r-one", "r-two"]], (recorded, d.log())
    finally:
        engine.release.set()
        d.stop()
        engine.shutdown()
        engine.server_close()
