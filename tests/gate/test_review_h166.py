"""Review h166 of what a person is shown about a network destination, through the real gate:
a real daemon on a temporary PILOTHOUSE_HOME, a bubblewrap run whose program writes raw
request lines to its proxy, and the daemon's history as `pilothouse history` gives it.

Nothing here leaves the machine: the one destination dialled is a server of the test's own on
the IPv6 loopback address, opened by an allow rule naming it; the others are `.invalid` names.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon, needs_bwrap

# Sends each request line given to it to the run's proxy (the bridge to its gate), one
# connection each, and prints the status line it got back.
RAW_CLIENT = """
import os, socket, sys
host, _, port = os.environ["HTTP_PROXY"].split("//")[1].rstrip("/").rpartition(":")
for line in sys.argv[1:]:
    s = socket.create_connection((host, int(port)))
    s.sendall(line.encode() + b"\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
    print("status", line, "->", s.recv(4096).split(b"\\r\\n")[0].decode())
    s.close()
"""


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


class _V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True


@pytest.fixture
def v6_origin() -> Iterator[int]:
    """An HTTP server on [::1] (the port it listens on)."""
    try:
        server = _V6Server(("::1", 0), _Ok)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback address to listen on ({exc})")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def run_raw(d: Daemon, workspace: Path, profile: str, *lines: str) -> str:
    result = d.cli("run", profile, "-w", str(workspace), "--wait", "--", "python3", "-c",
                   RAW_CLIENT, *lines, check=False, timeout=120)
    return result.stdout + result.stderr


def started(home: Path, env: dict[str, str], profile: str, network: str) -> Daemon:
    """A real daemon whose config has `profile` with these [network] lines."""
    (home / "config.toml").write_text(
        f'[defaults]\napproval_timeout = "60s"\n[profiles.{profile}]\ncommand = ["true"]\n'
        f"[profiles.{profile}.network]\n{network}")
    d = Daemon(home, env)
    d.start()
    return d


def answering(d: Daemon, workspace: Path, profile: str, lines: list[str],
              decide: Callable[[dict[str, Any], int], list[str]]) -> tuple[list[dict[str, Any]], str]:
    """A run sending `lines`; each request it makes a person answer is decided by the CLI words
    `decide(request, how many came before it)` gives. The requests asked, and the run's output."""
    done: dict[str, str] = {}
    client = threading.Thread(target=lambda: done.setdefault("out", run_raw(
        d, workspace, profile, *(f"{line} HTTP/1.1" for line in lines))))
    client.start()
    asked: list[dict[str, Any]] = []
    while client.is_alive():
        rows = json.loads(d.cli("approvals", "--json").stdout)
        for row in rows:
            d.cli(*decide(row, len(asked)), "--json")
            asked.append(row)
        if not rows:
            time.sleep(0.05)
    client.join(timeout=120)
    return asked, done.get("out", "")


def history_texts(d: Daemon, kind: str) -> list[str]:
    return [str(row.get("text")) for row in json.loads(d.cli("history", "--json").stdout)
            if row.get("kind") == kind]


# -- 1. an IPv6 destination was written host:port without brackets ---------------------------
#
# The gate's records (the history's line for each net.decision and net.closed, what
# `pilothouse history`, the console's history and the audit lines show) and the console's
# network feed wrote a destination as f"{host}:{port}", and an IPv6 host has no brackets in a
# record: an allowed connection to [::1] port 8443 was listed as `allow ::1:8443`, which is
# the address ::1:8443 (0:0:0:0:0:0:1:8443), another host, on no port at all; a config
# pattern copied from it (`::1:8443`, bare IPv6: no port) names that other host. The card
# and the approvals list write `[::1]:8443`. Now every view writes it so.

@needs_bwrap
def test_an_ipv6_destination_in_the_history_is_written_in_brackets(
        home: Path, daemon_env: dict[str, str], workspace: Path, v6_origin: int) -> None:
    port = v6_origin
    d = started(home, daemon_env, "six", f'default = "deny"\nallow = ["[::1]:{port}"]\n')
    try:
        out = run_raw(d, workspace, "six", f"GET http://[::1]:{port}/ HTTP/1.1")
        assert "-> HTTP/1.1 200" in out, out  # the rule allowed it and the server answered
        decided = history_texts(d, "net.decision")
        closed = history_texts(d, "net.closed")
    finally:
        d.stop()
    assert decided == [f"allow [::1]:{port}"], decided
    assert closed == [f"[::1]:{port}"], closed


# -- 2. an IPv6 address that wraps an IPv4 one was shown without the IPv4 address ------------
#
# On a network with a NAT64 translator (DNS64: IPv6-only offices, phones, many clouds), the
# well-known prefix 64:ff9b::/96 is the way to every IPv4 address, and SIIT's ::ffff:0:0:0/96
# likewise: `CONNECT [64:ff9b::93.184.215.14]:443` reaches 93.184.215.14. The gate judged it by
# the IPv4 address it wraps (a wrapper of 127.0.0.1 is refused), but the card, `pilothouse
# approvals` and the records wrote it as Python does, `[64:ff9b::5db8:d70e]:443`: no one
# reading it takes it for 93.184.215.14, as no one took `::ffff:808:808` for 8.8.8.8 (review
# s23, which writes the IPv4-mapped form dotted). Now both are written with the IPv4 address
# dotted (RFC 6052 2.4: `64:ff9b::93.184.215.14`), and a grant made from the card names that.
# The one request below is denied, never dialled.

WRAPPED = [("[64:ff9b::5db8:d70e]:443", "[64:ff9b::93.184.215.14]:443"),
           ("[::ffff:0:5db8:d70e]:443", "[::ffff:0:93.184.215.14]:443")]


@needs_bwrap
def test_an_ipv6_address_wrapping_an_ipv4_one_is_asked_with_it_dotted(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    d = started(home, daemon_env, "wrap", 'default = "ask"\n')
    try:
        asked, out = answering(d, workspace, "wrap", [f"CONNECT {w}" for w, _ in WRAPPED],
                               lambda row, _: ["deny", row["id"]])
        shown = d.cli("history").stdout
    finally:
        d.stop()
    assert [r["subject"] for r in asked] == [want for _, want in WRAPPED], asked
    assert out.count("-> HTTP/1.1 403") == len(WRAPPED), out
    for written, want in WRAPPED:
        assert want in shown and written not in shown, shown


# -- 3. a grant kept the host as the person typed it, not as it is reached ----------------------
#
# `pilothouse deny ID --scope global --pattern pаypal.invalid:443` (a Cyrillic а, as copied from an
# agent's text) was checked against the request (it covers xn--pypal-4ve.invalid:443) and kept
# as typed: `pilothouse grants` and the console's grants list then read `pаypal.invalid:443`,
# which reads as paypal.invalid, a host the grant does not cover (and an allow grant so typed
# opens xn--pypal-4ve.invalid where the list reads paypal.invalid). A profile rule made from
# the same pattern is written in punycode (canonical_network_pattern); a grant is now kept so
# too. Denied, never dialled.

@needs_bwrap
def test_a_network_grant_is_kept_as_the_host_it_reaches(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    d = started(home, daemon_env, "typed", 'default = "ask"\n')
    try:
        asked, out = answering(
            d, workspace, "typed", ["CONNECT p\u0430ypal.invalid:443",
                                    "CONNECT xn--pypal-4ve.invalid:443"],
            lambda row, _: ["deny", row["id"], "--scope", "global",
                            "--pattern", "P\u0430YPAL.invalid.:443"])
        listed = json.loads(d.cli("grants", "--json").stdout)
        table = d.cli("grants").stdout
    finally:
        d.stop()
    assert [r["subject"] for r in asked] == ["xn--pypal-4ve.invalid:443"], (asked, out)
    assert out.count("-> HTTP/1.1 403") == 2, out  # the second was denied by the grant
    assert [g["pattern"] for g in listed] == ["xn--pypal-4ve.invalid:443"], listed
    assert "xn--pypal-4ve.invalid:443" in table and "\u0430" not in table, table


# -- held: a grant from the card covers the destination it showed, in any spelling, and no more --
#
# `n` for this run on `x.invalid:443`: the same host and port written otherwise (upper case, a
# trailing dot, a fullwidth letter) is answered by that grant without a question, and the same
# name on another port is asked again, shown as itself. A deny grant, so nothing is looked up.

@needs_bwrap
def test_a_grant_covers_the_destination_shown_and_no_other_port(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    lines = ["CONNECT x.invalid:443", "CONNECT X.INVALID.:443", "CONNECT \uff58.invalid:443",
             "GET http://x.invalid.:443/", "CONNECT x.invalid.:8443"]
    d = started(home, daemon_env, "cover", 'default = "ask"\n')
    try:
        asked, out = answering(d, workspace, "cover", lines, lambda row, before: [
            "deny", row["id"], *(() if before else ("--scope", "run"))])
    finally:
        d.stop()
    assert [r["subject"] for r in asked] == ["x.invalid:443", "x.invalid:8443"], (asked, out)
    assert out.count("-> HTTP/1.1 403") == len(lines), out
