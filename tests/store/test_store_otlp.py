"""Copies of the history off the machine: security events and witness lines as OTLP/HTTP log
records, received by a collector of the test's own on 127.0.0.1 (a real HTTP server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from store.otlp import OtlpExporter
from store.writer import StoreWriter
from tests.conftest import Daemon


class _Collect(BaseHTTPRequestHandler):
    server: Any

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Any]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Collect)
    srv.posts = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()


def _records(srv: Any) -> list[dict[str, Any]]:
    out = []
    for path, ctype, body in srv.posts:
        assert path == "/v1/logs" and ctype == "application/json"
        for rl in body["resourceLogs"]:
            assert {"key": "service.name", "value": {"stringValue": "pilothouse"}} in \
                rl["resource"]["attributes"]
            for sl in rl["scopeLogs"]:
                for rec in sl["logRecords"]:
                    attrs = {a["key"]: next(iter(a["value"].values())) for a in rec["attributes"]}
                    out.append({"body": rec["body"]["stringValue"], **attrs})
    return out


def test_security_events_and_heads_reach_the_collector(
        make_writer: Callable[..., StoreWriter], tmp_path: Path, collector: Any) -> None:
    url = f"http://127.0.0.1:{collector.server_address[1]}/v1/logs"
    otlp = OtlpExporter(url)
    w = make_writer(witness=tmp_path / "audit.witness", witness_mirror=otlp.witness,
                    export_event=otlp.event)
    for i in range(3):
        w.commit("approval.decided", run_id="r1", actor="alice", text=f"decision {i}")
    w.record("net.closed", text="bulk, not copied")
    w.close()
    otlp.close()
    recs = _records(collector)
    events = [r for r in recs if r["event.name"] == "approval.decided"]
    assert [e["body"] for e in events] == ["decision 0", "decision 1", "decision 2"]
    assert [e["pilothouse.event.id"] for e in events] == ["1", "2", "3"]
    assert all(e["pilothouse.actor"] == "alice" and len(e["pilothouse.event.hash"]) == 64
               for e in events)
    heads = [json.loads(r["body"]) for r in recs if r["event.name"] == "pilothouse.audit.head"]
    assert heads and heads == [json.loads(x) for x in
                               (tmp_path / "audit.witness").read_text().splitlines()]
    assert not [r for r in recs if r["event.name"] == "net.closed"]


def test_a_collector_that_is_down_costs_nothing_but_a_count() -> None:
    otlp = OtlpExporter("http://127.0.0.1:9/v1/logs", timeout=0.5)
    otlp("approval.decided", "x", 1.0, {})
    otlp.close()
    assert otlp.sent == 0 and otlp.dropped == 1


def test_the_daemon_sends_its_history_to_the_configured_collector(
        home: Path, daemon_env: dict[str, str], collector: Any) -> None:
    port = collector.server_address[1]
    (home / "config.toml").write_text(f'[audit]\notlp = "http://127.0.0.1:{port}/v1/logs"\n')
    d = Daemon(home, daemon_env)
    d.start()
    d.stop()
    names = {r["event.name"] for r in _records(collector)}
    assert {"daemon.started", "pilothouse.audit.head"} <= names, names
