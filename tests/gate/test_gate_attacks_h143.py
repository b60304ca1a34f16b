"""Attack review of the network gate, helper 143: a hostile upstream's status line.

The gate re-serialises every head it forwards, and refuses a header value with CR, LF or NUL
in it (http1._headers), so what a client reads is framed the way the gate framed it. The
reason phrase of a status line was copied to the client byte for byte: a bare CR (or NUL, or
an escape) in it reached the client in the line the gate wrote. A client that ends a line at
a bare CR then reads the text behind it as a header the gate never let through (a
`Transfer-Encoding: chunked` beside the gate's own `Content-Length`), and frames the answer
differently than the gate did: what it reads as the answer to its next request on the same
proxy connection (to another destination, decided and recorded as such) is then bytes of
this server's. RFC 9112 4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ); a proxy that
forwards a bare CR breaks 2.2's MUST. Refused now (502), as a header value with one is.

Nothing here leaves the machine: names are under .invalid, the harness resolves them to a
global address that exists nowhere and routes the checked address to a local server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from tests.gate.support import Harness, running
from tests.gate.test_gate_attacks_s12_round2 import RawUpstream, policy

SMUGGLED = b"0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"


def _raw(answer: bytes):  # type: ignore[no-untyped-def]
    def serve(up: RawUpstream, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in up.received:
                data = conn.recv(65536)
                if not data:
                    return
                up.received += data
            conn.sendall(answer)
    return serve


def _answer(status_line: bytes, body: bytes = SMUGGLED):  # type: ignore[no-untyped-def]
    """An upstream that reads one request head and sends this status line, then a body."""
    return _raw(status_line + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


async def _through(status_line: bytes) -> bytes:
    up = RawUpstream(_answer(status_line))
    h = Harness(policy(), upstream_port=up.port)
    try:
        async with running(h):
            reader, writer = await h.open()
            writer.write(b"GET http://ok.invalid/ HTTP/1.1\r\nHost: ok.invalid\r\n\r\n")
            await writer.drain()
            got = b""
            with contextlib.suppress(TimeoutError, ConnectionError):
                async with asyncio.timeout(3):
                    while data := await reader.read(65536):
                        got += data
                        if got.endswith(SMUGGLED) or b"Bad Gateway" in got:
                            break
            writer.close()
            return got
    finally:
        up.close()


@pytest.mark.parametrize("reason", [
    b"OK\rTransfer-Encoding: chunked",  # a header only a bare-CR client sees
    b"OK\x00",
    b"OK\x1b]0;owned\x07",
    b"OK\x0bX",
])
async def test_a_status_lines_reason_with_control_characters_is_refused(reason: bytes) -> None:
    got = await _through(b"HTTP/1.1 200 " + reason)
    head = got.split(b"\r\n", 1)[0]
    assert reason not in got, got[:200]
    assert head.startswith(b"HTTP/1.1 502 "), got[:200]


async def test_a_plain_reason_and_a_tab_still_pass() -> None:
    got = await _through(b"HTTP/1.1 200 All\tfine \xe9")
    assert got.startswith(b"HTTP/1.1 200 All\tfine \xe9\r\n"), got[:200]
    assert got.endswith(SMUGGLED)


# -- 2. a bodiless answer's Content-Length was forwarded as the server wrote it ----------------
#
# An answer to HEAD, a 204 or a 304 has no body whatever its head says, so body_framing never
# reads its Content-Length; the gate still copied the last one to the client unread: two
# conflicting values (`5, 7`), junk, or one on a 204 (RFC 9110 8.6: a server MUST NOT send
# one there). A client that frames by it reads the gate's next answer on the same proxy
# connection (another destination's) as this one's body. Now a bodiless answer carries one
# only when it is a single plain number, and a 204 none.



async def _head_of(method: bytes, answer: bytes) -> bytes:
    up = RawUpstream(_raw(answer))
    h = Harness(policy(), upstream_port=up.port)
    try:
        async with running(h):
            reader, writer = await h.open()
            writer.write(method + b" http://ok.invalid/ HTTP/1.1\r\nHost: ok.invalid\r\n\r\n")
            await writer.drain()
            async with asyncio.timeout(3):
                head = await reader.readuntil(b"\r\n\r\n")
            writer.close()
            return head
    finally:
        up.close()


@pytest.mark.parametrize(("method", "answer", "shown"), [
    (b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5, 7\r\n\r\n", None),
    (b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n", None),
    (b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", None),
    (b"GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 100\r\n\r\n", None),
    (b"GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5, 7\r\n\r\n", None),
    (b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", b"1234"),
    (b"GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 42\r\n\r\n", b"42"),
])
async def test_a_bodiless_answers_length_is_forwarded_only_when_plain(
        method: bytes, answer: bytes, shown: bytes | None) -> None:
    head = await _head_of(method, answer)
    lengths = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
               if line.lower().startswith(b"content-length:")]
    assert lengths == ([shown] if shown is not None else []), head


# -- 3. a run's metered answers held memory without a bound for the run -----------------------
#
# The usage meter keeps a JSON answer whole up to 4 MiB (usage.py) to read its usage at the end.
# That bound was per answer: a run's agent holding many metered answers just short of that (an
# embeddings call returns megabytes of JSON; the agent reads what arrives and stops) kept 4 MiB
# each in the daemon for as long as it held them, 64 upstream connections a run: 256 MiB, as
# the request bodies were before review s33 bounded them per run. Now a run's meters share 16
# MiB; past it a meter keeps only the head and tail it keeps past 4 MiB.

CHUNK = 1 << 20


@pytest.mark.parametrize(("ctype", "start", "sent", "count"), [
    (b"application/json", b'{"data": "', 3 * CHUNK + CHUNK // 2, 12),  # under 4 MiB: kept whole
    (b"text/event-stream", b"data: ", CHUNK - CHUNK // 8, 24),  # a line under its 1 MiB bound
])
async def test_a_runs_metered_answers_share_one_memory_bound(
        ctype: bytes, start: bytes, sent: int, count: int) -> None:
    import gc

    from console.gate import GateLimits
    from console.gate.usage import UsageMeter

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (ctype, 8 * CHUNK, start))
            writer.write(b"x" * sent)  # and the rest never: the answer stays in flight
            await writer.drain()
            await asyncio.sleep(30)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    h = Harness(policy(), upstream_port=port, meter={("ok.invalid", 80)},
                limits=GateLimits(lookups_per_second=100))
    conns = []
    try:
        async with running(h):
            for _ in range(count):
                reader, writer = await h.open()
                writer.write(b"POST http://ok.invalid/v1/embeddings HTTP/1.1\r\n"
                             b"Host: ok.invalid\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
                conns.append((reader, writer))
            for reader, _ in conns:  # the agent reads what arrives, then stops reading
                got = 0
                async with asyncio.timeout(20):
                    while got < sent:
                        data = await reader.read(1 << 20)
                        assert data
                        got += len(data)
            gc.collect()
            meters = [m for m in gc.get_objects() if isinstance(m, UsageMeter)]
            held = sum(len(m._buf) + len(m._head) + len(m._line) + m._event_bytes
                       for m in meters)
            for _, writer in conns:
                writer.close()
    finally:
        server.close()
    assert len(meters) == count
    assert held <= 16 * CHUNK + count * 3 * 64 * 1024, f"{held / CHUNK:.0f} MiB held by one run"
