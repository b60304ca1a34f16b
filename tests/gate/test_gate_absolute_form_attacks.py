"""Attacks on the absolute-form HTTP path that held up in an attack review, kept so they stay so.
"""

from __future__ import annotations

import asyncio

import pytest

from console.gate import NetworkRules

from .support import FAKE_GLOBAL, Harness, Origin, client_hello, connect, running


@pytest.fixture
def origin():  # type: ignore[no-untyped-def]
    o = Origin()
    yield o
    o.close()


def rules() -> NetworkRules:
    return NetworkRules(allow=["ok.invalid"], deny=["evil.invalid"], default="deny",
                        ports=[80, 443])


async def exchange_raw(h: Harness, data: bytes, wait: float = 0.5) -> bytes:
    reader, writer = await h.open()
    writer.write(data)
    await writer.drain()
    out = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), wait)
            if not chunk:
                break
            out += chunk
    except TimeoutError:
        pass
    writer.close()
    return out


SMUGGLES = {
    "pipelined second request to a denied host":
        b"GET http://ok.invalid/a HTTP/1.1\r\nHost: ok.invalid\r\n\r\n"
        b"GET http://evil.invalid/b HTTP/1.1\r\nHost: ok.invalid\r\n\r\n",
    "CL and TE":
        b"POST http://ok.invalid/a HTTP/1.1\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET http://evil.invalid/ HTTP/1.1\r\n\r\n",
    "obs-fold TE":
        b"POST http://ok.invalid/a HTTP/1.1\r\nContent-Length: 0\r\nX: y\r\n chunked\r\n\r\n",
    "TE chunked, identity":
        b"POST http://ok.invalid/a HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
    "two CL":
        b"POST http://ok.invalid/a HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n",
    "userinfo":
        b"GET http://ok.invalid@evil.invalid/ HTTP/1.1\r\n\r\n",
    "backslash":
        b"GET http://evil.invalid\\@ok.invalid/ HTTP/1.1\r\n\r\n",
    "origin-form with Host":
        b"GET / HTTP/1.1\r\nHost: evil.invalid\r\n\r\n",
    "bare LF and CR in header":
        b"GET http://ok.invalid/a HTTP/1.1\nX: a\rGET http://evil.invalid/ HTTP/1.1\n\n",
    "chunk size with sign":
        b"POST http://ok.invalid/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", list(SMUGGLES))
async def test_no_request_reaches_a_denied_host(origin: Origin, name: str) -> None:
    h = Harness(rules(), upstream_port=origin.port,
                names={"ok.invalid": [FAKE_GLOBAL], "evil.invalid": [FAKE_GLOBAL]})
    async with running(h):
        await exchange_raw(h, SMUGGLES[name])
    assert "evil.invalid" not in h.resolved
    for seen in origin.requests:
        hosts = [v for k, v in seen["headers"] if k.lower() == "host"]
        assert hosts == ["ok.invalid"], seen
        assert "evil" not in seen["path"] and "GET http" not in seen["body"], seen
    assert len(origin.requests) <= 1


async def test_host_header_and_sni_do_not_steer_a_tunnel(origin: Origin) -> None:
    h = Harness(rules(), upstream_port=origin.port, names={"ok.invalid": [FAKE_GLOBAL]})
    async with running(h):
        status, _, _, reader, writer = await connect(h, "ok.invalid:443",
                                                     b"Host: evil.invalid:443\r\n")
        assert status == 200
        writer.write(client_hello("evil.invalid"))
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        for spelled in ("OK.INVALID.", "ok.invalid"):
            status, _, _, reader, writer = await connect(h, "ok.invalid:443")
            writer.write(client_hello(spelled.lower().rstrip(".")))
            await writer.drain()
            writer.close()
    kinds = [k for k, _ in h.records]
    assert kinds.count("net.sni_mismatch") == 1
