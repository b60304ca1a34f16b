"""The ClientHello check on both of the gate's tunnel pumps: the spliced one (loop callbacks
between the gate's own sockets, the first bytes held in the client's direction) and the one for
asyncio streams. Each case runs on both, so the one decision (tls.HelloCheck) holds on both:
a hello sent in the same write as the CONNECT head, a hello cut short by the client's close,
what the records say, and in what order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from console.gate import NetworkRules
from console.gate.tls import HelloCheck, parse_client_hello
from tests.gate.support import Echo, Harness, client_hello, read_response, running


def policy() -> NetworkRules:
    return NetworkRules(allow=["example.com"], default="deny", ports=[443])


class StreamsHarness(Harness):
    """Dials with asyncio's streams: the gate pumps the tunnel with tasks, not splice."""

    async def _dial(self, ip: Any, port: int, timeout: float) -> tuple[Any, Any]:
        self.dialled.append((str(ip), port))
        return await asyncio.open_connection("127.0.0.1", self.upstream_port)


PATHS = [pytest.param(Harness, id="spliced"), pytest.param(StreamsHarness, id="streams")]


async def pipelined(h: Harness, target: str, first: bytes
                    ) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
    """CONNECT and the tunnel's first bytes in one write, before the 200 is read."""
    reader, writer = await h.open()
    t = target.encode()
    writer.write(b"CONNECT " + t + b" HTTP/1.1\r\nHost: " + t + b"\r\n\r\n" + first)
    await writer.drain()
    status, _, _ = await read_response(reader)
    return status, reader, writer


@pytest.mark.parametrize("harness", PATHS)
async def test_a_mismatching_hello_behind_the_head_is_refused(harness: type[Harness]) -> None:
    echo = await Echo().start()
    h = harness(policy(), upstream_port=echo.port)
    async with running(h):
        status, reader, writer = await pipelined(h, "example.com:443", client_hello("evil.com"))
        assert status == 200
        assert await asyncio.wait_for(reader.read(), 5) == b""
        # Recorded before the client is let go, as when the hello comes after the 200.
        (mismatch,) = h.kinds("net.sni_mismatch")
        writer.close()
        await asyncio.sleep(0.05)
    await echo.close()
    assert mismatch["sni"] == "evil.com" and mismatch["host"] == "example.com"
    assert bytes(echo.received) == b""
    (closed,) = h.kinds("net.closed")
    assert closed["bytes_up"] == 0 and closed["how"] == "error"


@pytest.mark.parametrize("harness", PATHS)
async def test_a_matching_hello_behind_the_head_passes_in_order(harness: type[Harness]) -> None:
    echo = await Echo().start()
    h = harness(policy(), upstream_port=echo.port)
    hello = client_hello("example.com")
    async with running(h):
        status, reader, writer = await pipelined(h, "example.com:443", hello + b"after")
        assert status == 200
        writer.write(b" and more")
        await writer.drain()
        want = hello + b"after and more"
        assert await asyncio.wait_for(reader.readexactly(len(want)), 5) == want
        writer.close()
        await asyncio.sleep(0.05)
    await echo.close()
    assert not h.kinds("net.sni_mismatch")
    assert bytes(echo.received) == hello + b"after and more"


@pytest.mark.parametrize("harness", PATHS)
async def test_a_hello_cut_short_by_the_clients_close_goes_on_as_sent(
        harness: type[Harness]) -> None:
    # Not decidable, so not refused: the bytes go on and the tunnel ends as the client did.
    echo = await Echo().start()
    h = harness(policy(), upstream_port=echo.port)
    part = client_hello("example.com")[:40]
    async with running(h):
        status, reader, writer = await pipelined(h, "example.com:443", b"")
        assert status == 200
        writer.write(part)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # outright, not a half-close
        await asyncio.wait_for(writer.wait_closed(), 5)
        for _ in range(100):
            if h.kinds("net.closed"):
                break
            await asyncio.sleep(0.02)
    await echo.close()
    assert bytes(echo.received) == part
    assert not h.kinds("net.sni_mismatch")
    (closed,) = h.kinds("net.closed")
    assert closed["bytes_up"] == len(part)


def test_the_check_waits_for_a_whole_hello_then_decides_once() -> None:
    hello = client_hello("example.com")
    check = HelloCheck(lambda sni: sni == "example.com")
    assert not check.feed(hello[:3]) and not check.feed(hello[3:20])
    assert check.feed(hello[20:]) and not check.refused
    assert check.hello == parse_client_hello(hello) and bytes(check.buf) == hello
    other = HelloCheck(lambda sni: sni == "example.com")
    assert other.feed(client_hello("evil.com")) and other.refused
    plain = HelloCheck(lambda sni: False)
    assert plain.feed(b"SSH-2.0-x\r\n") and not plain.refused  # not TLS: passes
    short = HelloCheck(lambda sni: False)
    assert not short.feed(hello[:10]) and short.feed(b"") and not short.refused  # EOF decides


RETRY_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def server_hello(random: bytes) -> bytes:
    body = b"\x03\x03" + random + b"\x00" + b"\x13\x01" + b"\x00" + b"\x00\x00"
    msg = b"\x02" + len(body).to_bytes(3) + body
    return b"\x16\x03\x03" + len(msg).to_bytes(2) + msg


CCS = bytes([0x14, 3, 3, 0, 1, 1])
EARLY_DATA = bytes([0x17, 3, 3, 0, 3, 1, 2, 3])


def test_a_retry_request_rearms_the_check_for_the_second_hello() -> None:
    """RFC 8446 4.1.3: after a HelloRetryRequest the client sends a second ClientHello, which
    must name the CONNECT target as the first did (review H round 2, session 12)."""
    check = HelloCheck.naming("ok.invalid")
    assert check.feed(client_hello("ok.invalid")) and not check.refused
    hrr = server_hello(RETRY_RANDOM)
    assert not check.watch_server(hrr[:20])  # too few bytes to say yet
    assert check.watch_server(hrr[20:]) and check.waiting
    assert not check.feed(CCS)  # the compatibility record alone: still waiting for the hello
    assert check.feed(client_hello("evil.invalid")) and check.refused

    again = HelloCheck.naming("ok.invalid")
    again.feed(client_hello("ok.invalid"))
    again.watch_server(hrr)
    assert again.feed(CCS + client_hello("ok.invalid")) and not again.refused


def test_an_ordinary_server_hello_leaves_the_check_decided() -> None:
    check = HelloCheck.naming("ok.invalid")
    check.feed(client_hello("ok.invalid"))
    assert check.watch_server(server_hello(bytes(32))) and not check.waiting and not check.refused
    plain = HelloCheck.naming("ok.invalid")
    plain.feed(b"GET / HTTP/1.1\r\n\r\n")  # not TLS: nothing to re-arm
    assert plain.watch_server(server_hello(RETRY_RANDOM)) and not plain.waiting


def test_what_follows_the_first_hello_in_the_same_bytes() -> None:
    """Early data behind the hello passes; a second hello behind it is checked too."""
    check = HelloCheck.naming("ok.invalid")
    assert check.feed(client_hello("ok.invalid") + CCS + EARLY_DATA) and not check.refused
    assert bytes(check.buf).endswith(EARLY_DATA)
    twice = HelloCheck.naming("ok.invalid")
    assert twice.feed(client_hello("ok.invalid") + CCS + client_hello("evil.invalid"))
    assert twice.refused
