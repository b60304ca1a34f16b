"""Attack review of the network gate, round 12 (an agent inside the sandbox, the gate its only
way out). Each test asserts the secure behaviour, through the real Gate over real sockets.

Nothing here leaves the machine: names are under .invalid, the harness resolves them to a
global address that exists nowhere and routes the checked address to a local server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

import pytest

from console.gate import NetworkRules
from tests.gate.support import Echo, Harness, Origin, client_hello, running
from tests.gate.test_gate_hello_attacks import unix_client
from tests.gate.test_gate_hello_check import StreamsHarness

PATHS = [pytest.param(Harness, id="spliced"), pytest.param(StreamsHarness, id="streams")]
OK = b"HTTP/1.1 200 Connection established\r\n\r\n"


def policy() -> NetworkRules:
    return NetworkRules(allow=["ok.invalid"], deny=["evil.invalid"], default="deny",
                        ports=[80, 443])


async def read_all(s: socket.socket, within: float = 3) -> bytes:
    loop, got = asyncio.get_running_loop(), b""
    with contextlib.suppress(ConnectionError, TimeoutError):
        while data := await asyncio.wait_for(loop.sock_recv(s, 65536), within):
            got += data
    return got


# -- 1. a TLS record before the ClientHello hides the hello from the SNI check --------------
#
# HelloCheck reads the tunnel's first byte: 0x16 (handshake) is parsed, anything else is "not
# TLS" and passes with everything after it, unchecked. A TLS warning alert record (content type
# 0x15) is TLS, and TLS servers drop it before the ClientHello: Go's crypto/tls accepts an
# alert as the very first record ("First message, be extra suspicious": only alert or
# handshake) and drops warning-level alerts while no version is negotiated; rustls and
# BoringSSL ignore warning alerts likewise. So `alert + ClientHello(SNI=evil)` reaches a
# front end allowed by name or address and asks it for another host: the domain fronting the
# check exists to stop (docs/threat-model.md: "SNI that names another host than the CONNECT
# target" is stopped).

WARNING_ALERTS = {
    "user_canceled": bytes([0x15, 0x03, 0x01, 0x00, 0x02, 0x01, 90]),
    "no_renegotiation": bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 100]),
    "two-alerts": bytes([0x15, 0x03, 0x01, 0x00, 0x02, 0x01, 90]) * 2,
}


@pytest.mark.parametrize("prefix", list(WARNING_ALERTS))
@pytest.mark.parametrize("harness", PATHS)
async def test_a_tls_alert_record_before_the_hello_does_not_hide_a_foreign_sni(
        harness: type[Harness], prefix: str) -> None:
    echo = await Echo().start()
    h = harness(policy(), upstream_port=echo.port)
    loop = asyncio.get_running_loop()
    async with running(h):
        s = await unix_client(h)
        await loop.sock_sendall(s, b"CONNECT ok.invalid:443 HTTP/1.1\r\nHost: ok.invalid\r\n\r\n")
        assert await asyncio.wait_for(loop.sock_recv(s, len(OK)), 5) == OK
        await loop.sock_sendall(s, WARNING_ALERTS[prefix] + client_hello("evil.invalid"))
        await read_all(s, 1)
        s.close()
        await asyncio.sleep(0.1)
    await echo.close()
    assert b"evil.invalid" not in bytes(echo.received), (
        "a ClientHello naming another host reached the upstream behind a TLS alert record")


# -- 2. interim (1xx) answers are written to the client without back-pressure -------------
#
# forward.exchange relays every 1xx head it reads from upstream with writer.write() and no
# drain(), with no limit on how many: an upstream that streams 1xx heads to a client that
# does not read grows the gate's write buffer (SockStream._out, appended with bytes +=, so
# quadratic copying too) without bound, in the daemon that serves every run. And as the
# upstream socket always has data (SockStream._fill recv()s without waiting) and nothing is
# drained, the handler never yields: the daemon's event loop serves that one connection and
# nothing else (other connections, other runs' gates, operator.sock) until the upstream stops.
# The agent holds both ends: it is the client, and the upstream is any server of its own that
# a person allowed (or a rule did).

class OneRequestOrigin:
    """An origin on 127.0.0.1 (its own thread, blocking socket) for one connection: it reads
    one request head, then `answer(conn)` says what comes back."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn, contextlib.suppress(OSError):
            conn.settimeout(5)
            got = b""
            while b"\r\n\r\n" not in got:
                got += conn.recv(65536)
            self.answer(conn)

    def answer(self, conn: socket.socket) -> None:
        raise NotImplementedError


class InterimFlood(OneRequestOrigin):
    """Answers a request head with 1xx heads for `seconds` or until `stop`, counting the
    bytes the gate took; `going` is set while it sends."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.sent = 0
        self.going, self.stop = threading.Event(), threading.Event()
        super().__init__()

    def answer(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        head = b"HTTP/1.1 102 Processing\r\nX-Pad: " + b"a" * 16000 + b"\r\n\r\n"
        end = time.monotonic() + self.seconds
        self.going.set()
        try:
            while time.monotonic() < end and not self.stop.is_set():
                try:
                    self.sent += conn.send(head)
                except TimeoutError:
                    continue  # the gate stopped reading: back-pressure works
                except OSError:
                    return
        finally:
            self.going.clear()


DENIED = b"CONNECT evil.invalid:443 HTTP/1.1\r\nHost: evil.invalid\r\n\r\n"


def probe_during(path: str, going: threading.Event, done: threading.Event,
                 out: list[tuple[bytes, bool]], delay: float = 1.0) -> None:
    """From a thread (the gate's loop may be busy): `delay` into the attack (`going`), a
    denied CONNECT on a second connection; out gets its answer's first bytes and whether the
    attack was still going when it came. `done` then ends the attack: an attack that holds
    the loop runs to its end (far past any answer a free loop gives) before the 403 comes,
    which tells "stalled" from "slow" with no clock in the test."""
    try:
        going.wait(10)
        time.sleep(delay)  # well into the attack
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(60)
            s.connect(path)
            s.sendall(DENIED)
            got = s.recv(100)
            out.append((got[:12], going.is_set()))
    finally:
        done.set()


async def test_an_upstream_streaming_interim_answers_does_not_stall_the_gate() -> None:
    flood = InterimFlood(seconds=20.0)  # ended by the probe's answer, when there is one
    h = Harness(policy(), upstream_port=flood.port)
    loop = asyncio.get_running_loop()
    answered: list[tuple[bytes, bool]] = []
    async with running(h):
        s = await unix_client(h)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await loop.sock_sendall(s, b"GET http://ok.invalid/ HTTP/1.1\r\nHost: ok.invalid\r\n\r\n")
        # The client never reads; the upstream pushes 1xx heads as fast as the gate takes
        # them. Meanwhile another connection asks for a denied host.
        probe = threading.Thread(target=probe_during,
                                 args=(h.path, flood.going, flood.stop, answered))
        probe.start()
        await asyncio.to_thread(flood.thread.join, 30)
        await asyncio.to_thread(probe.join, 30)
        s.close()
    flood.sock.close()
    assert answered == [(b"HTTP/1.1 403", True)], (
        f"a 403 on another connection came only once the flood ended ({answered}): the "
        f"gate's loop served the 1xx flood ({flood.sent / 2**20:.0f} MiB taken from upstream "
        "for a client that reads nothing) and nothing else")


# -- 3. a request target the gate cannot write back is dialled, then crashes the handler ---
#
# The request target is decoded as UTF-8 (parse_request_line) and the path re-encoded as
# latin-1 (http1.render) only after the decision, the record and the dial: a character past
# U+00FF in the path raises UnicodeEncodeError inside forward.exchange, which _http does not
# catch. The connection dies without an answer, the handler's catch-all logs a traceback
# for each such request, and an upstream connection was opened (and recorded as an error)
# for a request that was never sent. A latin-1 character (é) is sent as one byte, E9, instead
# of the C3 A9 the client wrote: what goes upstream is not what was asked.

async def test_a_path_that_cannot_be_forwarded_is_answered_400_and_never_dialled(
        caplog: pytest.LogCaptureFixture) -> None:
    origin = Origin()
    h = Harness(policy(), upstream_port=origin.port)
    try:
        async with running(h):
            reader, writer = await h.open()
            writer.write("GET http://ok.invalid/\u20ac HTTP/1.1\r\nHost: ok.invalid\r\n\r\n"
                         .encode())
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
    finally:
        origin.close()
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert h.dialled == [], "an upstream connection was opened for a request never sent"
    assert not [r for r in caplog.records if r.exc_info], "a traceback for an expected refusal"


async def test_a_non_ascii_path_reaches_the_origin_as_the_client_wrote_it() -> None:
    origin = Origin()
    h = Harness(policy(), upstream_port=origin.port)
    try:
        async with running(h):
            reader, writer = await h.open()
            writer.write("GET http://ok.invalid/caf\u00e9 HTTP/1.1\r\nHost: ok.invalid\r\n"
                         "Connection: close\r\n\r\n".encode())
            await writer.drain()
            await asyncio.wait_for(reader.read(), 5)
            writer.close()
    finally:
        origin.close()
    # The origin (http.server) decodes the request line as latin-1; what the client sent
    # was the UTF-8 bytes 63 61 66 C3 A9. Refusing it (400, nothing dialled) is fine too.
    assert [r["path"] for r in origin.requests] in ([], ["/caf\u00c3\u00a9"]), origin.requests
