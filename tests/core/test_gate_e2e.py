"""From inside real bubblewrap, curl through the bridge and the gate to a test server on the
host's loopback: allowed, asked and denied exactly as the profile says."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap

pytestmark = pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed (apt-get install curl)")


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = f"hello from {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()


def _config(home: Path, port: int, default: str) -> None:
    (home / "config.toml").write_text(
        "[profiles.web]\n"
        'command = ["true"]\n'
        "[profiles.web.network]\n"
        f'default = "{default}"\n'
        f'allow = ["127.0.0.1:{port}"]\n'
        'deny = ["**.blocked.test"]\n'
    )


def _curl(url: str) -> str:
    return f"curl -sS -m 20 -o /dev/null -w '%{{http_code}}\\n' {url}; echo rc=$?"


@needs_bwrap
def test_allowed_denied_by_rule_and_by_address(home: Path, daemon_env: dict[str, str],
                                               workspace: Path, server: int) -> None:
    _config(home, server, "deny")
    d = Daemon(home, daemon_env)
    d.start()
    try:
        script = "; ".join([
            f"curl -sS -m 20 http://127.0.0.1:{server}/inside",
            _curl(f"http://127.0.0.1:{server + 1 if server < 65535 else 1}/"),
            _curl("http://x.blocked.test/"),
            f"curl -sS -m 5 --noproxy '*' http://127.0.0.1:{server}/direct; echo direct=$?",
        ])
        r = d.cli("run", "web", "-w", str(workspace), "--wait", "--", "sh", "-c", script)
        out = r.stdout
        assert "hello from /inside" in out, out
        # Whole lines: a substring count also finds "403" in a random port number
        # (curl's "Failed to connect to 127.0.0.1 port 34031" made it 3 once).
        assert out.splitlines().count("403") == 2, out
        assert "hello from /direct" not in out and "direct=0" not in out
        decisions = json.loads(d.cli("history", "--kind", "net.decision", "--json").stdout)
        actions = sorted(e["data"]["action"] for e in decisions)
        assert actions == ["allow", "deny", "deny"]
        allowed = next(e for e in decisions if e["data"]["action"] == "allow")
        assert allowed["data"]["rule"] == f"127.0.0.1:{server}"
        assert allowed["data"]["source"].endswith("config.toml:5")
        closed = json.loads(d.cli("history", "--kind", "net.closed", "--json").stdout)
        assert closed and closed[0]["data"]["bytes_down"] > 0
    finally:
        d.stop()


@needs_bwrap
@pytest.mark.parametrize("allow", [True, False])
def test_unknown_destination_is_asked(home: Path, daemon_env: dict[str, str], workspace: Path,
                                      server: int, allow: bool) -> None:
    # 127.0.0.2 is loopback too: it is denied unless named, so name it only as an ask target
    # through a default of "ask" and an explicit rule for the port on 127.0.0.1 only.
    _config(home, server, "ask")
    d = Daemon(home, daemon_env)
    d.start()
    try:
        out: dict[str, str] = {}

        def agent() -> None:
            out["text"] = d.cli("run", "web", "-w", str(workspace), "--wait", "--", "sh", "-c",
                                _curl("http://unknown-host.test/"), check=False).stdout

        t = threading.Thread(target=agent)
        t.start()
        pending: list[dict] = []
        deadline = time.monotonic() + 30
        while not pending and time.monotonic() < deadline:
            pending = json.loads(d.cli("approvals", "--json").stdout)
            time.sleep(0.1)
        assert pending and pending[0]["kind"] == "network"
        assert pending[0]["subject"] == "unknown-host.test:80"
        d.cli("approve" if allow else "deny", pending[0]["id"])
        t.join(timeout=60)
        decided = json.loads(d.cli("history", "--kind", "net.decision", "--json").stdout)[0]["data"]
        assert decided["provenance"]["person"]
        if not allow:
            assert "403" in out["text"] and decided["action"] == "deny"
        elif decided["basis"] == "not-routable":
            # A resolver that answers for made-up names with a reserved address: still denied.
            assert "403" in out["text"] and decided["action"] == "deny"
        else:
            # Offline, an approved name that does not resolve ends at the gate with 502.
            assert "502" in out["text"] and decided["action"] == "allow", out["text"]
    finally:
        d.stop()
