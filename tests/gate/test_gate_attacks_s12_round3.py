"""Attack review of the network gate, session 12, third pass (review H round 3): the checks of
every ClientHello in a tunnel (commit bbb6013) and the reload that ends tunnels (e03f212).
Each test asserts the secure behaviour, through the real Gate over real sockets.

Nothing here leaves the machine: names are under .invalid, the harness resolves them to a
global address that exists nowhere and routes the checked address to a local server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from console.gate import NetworkRules
from console.gate.common import Verdict
from tests.gate.support import FAKE_GLOBAL, Echo, Harness, client_hello, free_port, running
from tests.gate.test_gate_attacks_s12_round2 import (
    OK,
    PATHS,
    RawUpstream,
    _hello_retry_request,
    _read_exactly,
    _retry_once,
    policy,
)

_CCS = b"\x14\x03\x03\x00\x01\x01"


async def _tunnel(h: Harness) -> socket.socket:
    loop = asyncio.get_running_loop()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    await loop.sock_connect(s, h.path)
    await loop.sock_sendall(s, b"CONNECT ok.invalid:443 HTTP/1.1\r\nHost: ok.invalid\r\n\r\n")
    assert await _read_exactly(loop, s, len(OK)) == OK
    return s


async def _ended(s: socket.socket, seconds: float) -> bool:
    """Whether the gate ends the client's connection within `seconds` (EOF or reset);
    what it sends before that is read and dropped."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(seconds):
            while await loop.sock_recv(s, 65536):
                pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


# -- 1. a second ClientHello sent before the server's retry request ------------------------
#
# The check re-arms when the server's HelloRetryRequest passes. But the client does not have
# to wait for it: a client that knows the server's groups (offer a key share only for x25519
# to a server that wants P-256) knows the retry will come and what its second hello must be
# (no cookie from a stateful server). It sends hello 1 (SNI ok.invalid), and right behind it,
# in a separate write once the gate has passed the first, CCS + hello 2 (SNI evil.invalid).
# The first hello's check is over (HelloCheck decided, the direction's check is None), so the
# second passes unread; the server reads it from its buffer after sending the retry. When the
# retry then passes the gate, it re-arms a check that waits for a hello already sent.

def _retry_late(received_first: threading.Event, send_retry: threading.Event):  # type: ignore[no-untyped-def]
    def serve(up: RawUpstream, conn: socket.socket) -> None:
        got = b""
        while len(got) < 5 or len(got) < 5 + int.from_bytes(got[3:5]):
            data = conn.recv(65536)
            if not data:
                return
            got += data
        up.received += got
        received_first.set()
        send_retry.wait(10)
        conn.sendall(_hello_retry_request())
        with contextlib.suppress(OSError):
            while data := conn.recv(65536):
                up.received += data
    return serve


@pytest.mark.parametrize("harness", PATHS)
async def test_a_second_hello_sent_before_the_retry_request_is_checked(
        harness: type[Harness]) -> None:
    received_first, send_retry = threading.Event(), threading.Event()
    up = RawUpstream(_retry_late(received_first, send_retry))
    h = harness(policy(), upstream_port=up.port)
    loop = asyncio.get_running_loop()
    async with running(h):
        s = await _tunnel(h)
        await loop.sock_sendall(s, client_hello("ok.invalid"))
        assert await asyncio.to_thread(received_first.wait, 5)
        with contextlib.suppress(OSError):
            await loop.sock_sendall(s, _CCS + client_hello("evil.invalid"))
        await asyncio.sleep(0.3)  # the second hello is with the gate (or passed) before the retry
        send_retry.set()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(loop.sock_recv(s, 100), 1)
        await asyncio.sleep(0.3)
        s.close()
        await asyncio.to_thread(up.thread.join, 5)
    up.close()
    assert b"ok.invalid" in bytes(up.received)
    assert b"evil.invalid" not in bytes(up.received), (
        "a second ClientHello naming a denied host, sent between the first hello and the "
        "server's HelloRetryRequest, reached the upstream unchecked")


# -- 2. what the check holds has no bound once a hello has passed it -----------------------
#
# parse_client_hello bounds one hello (MAX_HELLO_BYTES). But HelloCheck._read keeps holding
# (need_more, want 0) in two places without any bound:
#  a. behind an accepted first hello, while the records after it end in an incomplete one
#     (`_past_records(...) < 0`): hello 1 + any number of application_data records + one
#     record header whose body never completes;
#  b. after a HelloRetryRequest, while what came is only records of the types skipped before
#     the second hello (`start == len(buf)`): endless application_data records.
# Each read then copies the whole buffer (bytes(self.buf)) and walks every record again, in
# Python, on the daemon's loop: the memory grows with what the client sends, and the CPU with
# its square (zero-length records are 5 bytes each). A real client sends a few hundred bytes
# there. The check should refuse once it holds more than one hello's bound.

_EMPTY_APPDATA = b"\x17\x03\x03\x00\x00"


def _quiet(up: RawUpstream, conn: socket.socket) -> None:
    conn.settimeout(60)  # the server waits (RawUpstream's 10 s would end the tunnel itself)
    with contextlib.suppress(OSError):
        while data := conn.recv(65536):
            up.received += data


@pytest.mark.parametrize("harness", PATHS)
async def test_records_behind_the_first_hello_are_not_held_without_bound(
        harness: type[Harness]) -> None:
    up = RawUpstream(_quiet)
    h = harness(policy(), upstream_port=up.port)
    loop = asyncio.get_running_loop()
    async with running(h):
        s = await _tunnel(h)
        # Every write ends inside a record (its header says 16 bytes, 1 is sent): the check
        # keeps waiting for it, and the next write completes it and opens the next one.
        tail = b"\x17\x03\x03\x00\x10" + b"x"
        await loop.sock_sendall(s, client_hello("ok.invalid") + tail)
        chunk = b"y" * 15 + _EMPTY_APPDATA * 2000 + tail  # about 10 KB
        with contextlib.suppress(OSError):
            for _ in range(150):  # about 1.5 MB held, over 20 times one hello's bound
                await asyncio.wait_for(loop.sock_sendall(s, chunk), 10)
        ended = await _ended(s, 10)
        s.close()
        up.close()
    assert ended, ("the hello check held over 1.5 MB of records behind an accepted "
                   "ClientHello, waiting for more")


def _retry_at_once(up: RawUpstream, conn: socket.socket) -> None:
    _retry_once(up, conn, timeout=60)  # as _quiet


@pytest.mark.parametrize("harness", PATHS)
async def test_records_after_a_retry_request_are_not_held_without_bound(
        harness: type[Harness]) -> None:
    up = RawUpstream(_retry_at_once)
    h = harness(policy(), upstream_port=up.port)
    loop = asyncio.get_running_loop()
    async with running(h):
        s = await _tunnel(h)
        await loop.sock_sendall(s, client_hello("ok.invalid"))
        hrr = _hello_retry_request()
        assert await _read_exactly(loop, s, len(hrr)) == hrr
        chunk = _EMPTY_APPDATA * 2000  # 10 KB of records skipped before a second hello
        with contextlib.suppress(OSError):
            for _ in range(150):
                await asyncio.wait_for(loop.sock_sendall(s, chunk), 10)
        ended = await _ended(s, 10)
        s.close()
        up.close()
    assert ended, ("after a HelloRetryRequest the hello check held 1.5 MB of records, "
                   "waiting for a second ClientHello")


# -- what holds: real OpenSSL flows through the gate ---------------------------------------
#
# `openssl s_client -proxy` through the gate (listening on 127.0.0.1 as the sandbox bridge
# does) to `openssl s_server` on 127.0.0.1: TLS 1.2, TLS 1.3, and TLS 1.3 with a
# HelloRetryRequest (the client's first key share is X25519, the server takes only P-256).
# None of them may be refused; with a retry, the second hello (same name) passes too.

_OPENSSL = shutil.which("openssl")


def _cert(folder: str) -> tuple[str, str]:
    key, crt = os.path.join(folder, "k.pem"), os.path.join(folder, "c.pem")
    subprocess.run([_OPENSSL or "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "1", "-subj", "/CN=ok.invalid"], check=True,
                   capture_output=True, timeout=30)
    return key, crt


@pytest.mark.skipif(_OPENSSL is None, reason="needs the openssl command")
@pytest.mark.parametrize("harness", PATHS)
@pytest.mark.parametrize("server_args,client_args,retry", [
    pytest.param(["-tls1_2"], ["-tls1_2"], False, id="tls1.2"),
    pytest.param(["-tls1_3"], ["-tls1_3"], False, id="tls1.3"),
    pytest.param(["-tls1_3", "-groups", "P-256"], ["-tls1_3", "-groups", "X25519:P-256"], True,
                 id="tls1.3-hello-retry"),
])
async def test_real_openssl_flows_pass_the_gate(harness: type[Harness], server_args: list[str],
                                                client_args: list[str], retry: bool,
                                                tmp_path: Path) -> None:
    key, crt = _cert(str(tmp_path))
    port = free_port()
    server = subprocess.Popen(
        [_OPENSSL or "openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-key", key,
         "-cert", crt, "-naccept", "1", "-www", "-trace", *server_args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            await asyncio.sleep(0.05)
        # That probe was s_server's one accept (-naccept 1 counts it): start it again.
        server.kill()
        server.wait()
        server = subprocess.Popen(
            [_OPENSSL or "openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-key", key,
             "-cert", crt, "-naccept", "1", "-www", "-trace", *server_args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        await asyncio.sleep(0.5)
        h = harness(policy(), upstream_port=port)
        async with running(h):
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            await h.gate.serve_socket(listener)
            gport = listener.getsockname()[1]
            client = await asyncio.create_subprocess_exec(
                _OPENSSL or "openssl", "s_client", "-proxy", f"127.0.0.1:{gport}",
                "-connect", "ok.invalid:443", "-servername", "ok.invalid", "-ign_eof",
                *client_args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT)
            out, _ = await asyncio.wait_for(client.communicate(b"GET / HTTP/1.0\r\n\r\n"), 20)
            refused = h.kinds("net.sni_mismatch")
        text = out.decode("latin-1")
    finally:
        server.kill()
        trace = server.communicate()[0].decode("latin-1")
    assert not refused, refused
    assert "HTTP/1.0 200 ok" in text, text[-2000:]
    if retry:  # the flow did go through a HelloRetryRequest
        assert trace.count("ClientHello") >= 2, trace[-3000:]


# -- 3. a reload during the decision is not seen by the connection being decided -----------
#
# Deciding.replace_rules ends the connections whose `conn.upstream` the new rules deny. A
# connection whose upstream is not set yet is skipped: one waiting for a person's answer about
# an address (`_by_address` asks, then uses the verdict without reading the rules again), or
# one dialling after it was allowed (`_open`, up to connect_timeout). A reload that denies the
# destination in that window is never applied to it: the tunnel opens afterwards under the
# old verdict and stays open, as before e03f212. (A reload during the ask by name is read
# again in _by_address and holds.)

async def _connect_status(h: Harness, target: str
                          ) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await h.open()
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return head.split(b"\r\n")[0], reader, writer


async def _tunnel_works(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    try:
        writer.write(b"ping")
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(4), 3) == b"ping"
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
        return False


@pytest.mark.parametrize("harness", PATHS)
async def test_a_reload_while_a_person_is_asked_about_an_address_is_applied(
        harness: type[Harness]) -> None:
    echo = await Echo().start()
    asked, answer = asyncio.Event(), asyncio.Event()

    async def ask(question):  # type: ignore[no-untyped-def]
        asked.set()
        await answer.wait()
        return Verdict(True, {"by": "alice"})

    h = harness(NetworkRules(default="ask", ports=[443]), upstream_port=echo.port, ask=ask)
    try:
        async with running(h):
            pending = asyncio.ensure_future(_connect_status(h, f"{FAKE_GLOBAL}:443"))
            await asyncio.wait_for(asked.wait(), 5)
            h.gate.replace_rules(NetworkRules(default="ask", deny=[f"{FAKE_GLOBAL}/32"], ports=[443]))
            answer.set()  # the person says yes to the question asked under the old rules
            status, reader, writer = await pending
            works = b" 200 " in status + b" " and await _tunnel_works(reader, writer)
            writer.close()
    finally:
        await echo.close()
    assert not works, ("a tunnel to an address the reloaded rules deny opened after the "
                       "person's answer and stays open")


def _slow_dial(harness: type[Harness]) -> type[Harness]:
    class SlowDial(harness):  # type: ignore[misc, valid-type]
        dialling: asyncio.Event
        release: asyncio.Event

        async def _dial(self, ip, port, timeout):  # type: ignore[no-untyped-def]
            self.dialling.set()
            await self.release.wait()
            return await super()._dial(ip, port, timeout)
    return SlowDial


@pytest.mark.parametrize("harness", PATHS)
async def test_a_reload_while_the_gate_dials_is_applied(harness: type[Harness]) -> None:
    echo = await Echo().start()
    h = _slow_dial(harness)(NetworkRules(default="deny", allow=["cut.invalid"], ports=[443]),
                            upstream_port=echo.port)
    h.dialling, h.release = asyncio.Event(), asyncio.Event()  # type: ignore[attr-defined]
    try:
        async with running(h):
            pending = asyncio.ensure_future(_connect_status(h, "cut.invalid:443"))
            await asyncio.wait_for(h.dialling.wait(), 5)  # type: ignore[attr-defined]
            h.gate.replace_rules(NetworkRules(default="deny", deny=["cut.invalid"], ports=[443]))
            h.release.set()  # type: ignore[attr-defined]  # the connect completes
            status, reader, writer = await pending
            works = b" 200 " in status + b" " and await _tunnel_works(reader, writer)
            writer.close()
    finally:
        await echo.close()
    assert not works, ("a tunnel whose destination a reload denied while the gate was "
                       "dialling opened and stays open")
