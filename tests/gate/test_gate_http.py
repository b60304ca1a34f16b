"""Absolute-form HTTP through the gate to a real origin (stdlib http.server), with a real
client (http.client) where framing matters: keep-alive, bodies, the Host header, metering."""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import socket
from typing import Any

import pytest

from console.gate import NetworkRules

from .support import FAKE_GLOBAL, Harness, Origin, read_response, running

OTHER_GLOBAL = ipaddress.ip_address("151.101.1.69")


def policy(**kw: Any) -> NetworkRules:
    base: dict[str, Any] = {"allow": ["example.com", "**.good.org"], "deny": ["evil.com"],
                            "default": "deny", "ports": [80, 443]}
    base.update(kw)
    return NetworkRules(**base)


@pytest.fixture
def origin():  # type: ignore[no-untyped-def]
    o = Origin()
    yield o
    o.close()


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client (an independent HTTP implementation) speaking to the gate's socket."""

    def __init__(self, path: str) -> None:
        super().__init__("gate")
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(self.path)
        self.sock = s


# -- absolute-form HTTP -------------------------------------------------------------------------

def _names() -> dict[str, list[Any]]:
    return {"example.com": [FAKE_GLOBAL], "a.good.org": [OTHER_GLOBAL]}


async def test_keep_alive_decides_each_request(origin: Origin) -> None:
    h = Harness(policy(), upstream_port=origin.port, names=_names())

    def client() -> list[tuple[int, Any]]:
        conn = UnixHTTPConnection(h.path)
        out = []
        for url in ("http://example.com/one", "http://a.good.org:80/two?x=1",
                    "http://example.com/three", "http://evil.com/four"):
            conn.request("GET", url, headers={"Proxy-Authorization": "secret",
                                              "Connection": "keep-alive, X-Hop", "X-Hop": "1"})
            resp = conn.getresponse()
            out.append((resp.status, resp.read()))
        return out

    async with running(h):
        results = await asyncio.to_thread(client)
    assert [s for s, _ in results] == [200, 200, 200, 403]
    assert [r["path"] for r in origin.requests] == ["/one", "/two?x=1", "/three"]
    hosts = [dict(r["headers"])["Host"] for r in origin.requests]
    assert hosts == ["example.com", "a.good.org", "example.com"]
    for r in origin.requests:
        names = {k.lower() for k, _ in r["headers"]}
        assert not names & {"proxy-authorization", "x-hop", "connection", "keep-alive"}
    decisions = h.kinds("net.decision")
    assert [(d["host"], d["action"]) for d in decisions] == [
        ("example.com", "allow"), ("a.good.org", "allow"), ("example.com", "allow"),
        ("evil.com", "deny")]
    assert h.dialled == [(str(FAKE_GLOBAL), 80), (str(OTHER_GLOBAL), 80),
                         (str(FAKE_GLOBAL), 80)]


async def test_same_target_reuses_the_upstream_connection(origin: Origin) -> None:
    h = Harness(policy(), upstream_port=origin.port)

    def client() -> None:
        conn = UnixHTTPConnection(h.path)
        for i in range(3):
            conn.request("GET", f"http://example.com/{i}")
            assert conn.getresponse().read()

    async with running(h):
        await asyncio.to_thread(client)
    assert len(h.kinds("net.decision")) == 3 and len(h.dialled) == 1


async def test_host_header_is_ignored_for_the_decision(origin: Origin) -> None:
    h = Harness(policy(), upstream_port=origin.port)
    async with running(h):
        reader, writer = await h.open()
        writer.write(b"GET http://evil.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        status, headers, _ = await read_response(reader)
        assert status == 403 and headers["x-pilothouse-decision"] == "deny; rule=evil.com"
        writer.close()
        reader, writer = await h.open()
        writer.write(b"GET http://example.com/x HTTP/1.1\r\nHost: evil.com\r\n\r\n")
        status, _, body = await read_response(reader)
        assert status == 200
        writer.close()
    assert dict(origin.requests[0]["headers"])["Host"] == "example.com"
    assert [d["host"] for d in h.kinds("net.decision")] == ["evil.com", "example.com"]


async def test_chunked_request_and_response_bodies(origin: Origin) -> None:
    h = Harness(policy(), upstream_port=origin.port)
    payload = [b"first piece,", b"second;", b"x" * 70000]

    def client() -> tuple[int, dict[str, Any], str | None]:
        conn = UnixHTTPConnection(h.path)
        conn.request("POST", "http://example.com/chunked", body=iter(payload),
                     encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read()), resp.getheader("Transfer-Encoding")

    async with running(h):
        status, seen, te = await asyncio.to_thread(client)
    assert status == 200 and te == "chunked"
    assert seen["body"].encode("latin-1") == b"".join(payload)
    assert seen["method"] == "POST"


async def test_content_length_body_eof_response_and_http10(origin: Origin) -> None:
    h = Harness(policy(), upstream_port=origin.port)
    async with running(h):
        reader, writer = await h.open()
        writer.write(b"PUT http://example.com/eof HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b"Connection: close" in head
        body = await asyncio.wait_for(reader.read(), 5)  # until the gate closes
        assert json.loads(body)["body"] == "hello"
        writer.close()
        reader, writer = await h.open()
        writer.write(b"GET http://example.com/chunked HTTP/1.0\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"Transfer-Encoding" not in head and json.loads(body)["path"] == "/chunked"
        writer.close()


@pytest.mark.parametrize("raw,status", [
    (b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n", 400),
    (b"GET https://example.com/ HTTP/1.1\r\n\r\n", 400),
    (b"GET http://example.com/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked"
     b"\r\n\r\n", 400),
    (b"GET http://example.com/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
    (b"GET http://example.com/ HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400),
    (b"GET http://example.com/ HTTP/1.1\r\nBad Header: a\r\n\r\n", 400),
    (b"GET http://example.com/ HTTP/2.0\r\n\r\n", 505),
    (b"GET http://ex\xffample.com/ HTTP/1.1\r\n\r\n", 400),
    (b"GET http://127.1/ HTTP/1.1\r\n\r\n", 400),
])
async def test_malformed_requests_are_never_dialled(origin: Origin, raw: bytes,
                                                    status: int) -> None:
    h = Harness(policy(), upstream_port=origin.port)
    async with running(h):
        reader, writer = await h.open()
        writer.write(raw)
        got, _, _ = await read_response(reader)
        writer.close()
    assert got == status and not h.dialled and not h.kinds("net.decision")


async def test_expect_100_continue(origin: Origin) -> None:
    h = Harness(policy(), upstream_port=origin.port)
    async with running(h):
        reader, writer = await h.open()
        writer.write(b"POST http://example.com/ HTTP/1.1\r\nContent-Length: 2\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == \
            b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"ok")
        status, _, body = await read_response(reader)
        assert status == 200 and json.loads(body)["body"] == "ok"
        writer.close()


async def test_metered_endpoint_records_tokens(origin: Origin) -> None:
    sse = [b'data: {"model":"llama","choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n',
           b'data: {"model":"llama","choices":[],"usage":{"prompt_tokens":11,',
           b'"completion_tokens":7,"total_tokens":18}}\n\ndata: [DONE]\n\n']
    origin.route("/v1/chat/completions", "text/event-stream", sse)
    rules = policy(allow=[f"127.0.0.1:{origin.port}"])
    h = Harness(rules, upstream_port=origin.port, real_dial=True,
                meter={("127.0.0.1", origin.port)})
    async with running(h):
        reader, writer = await h.open()
        writer.write(f"POST http://127.0.0.1:{origin.port}/v1/chat/completions HTTP/1.1\r\n"
                     f"Accept-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{{}}".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b"200" in head.split(b"\r\n")[0]
        body = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
        assert b"[DONE]" in body
        writer.close()
        for _ in range(100):
            if h.kinds("tokens"):
                break
            await asyncio.sleep(0.01)
    (tokens,) = h.kinds("tokens")
    assert (tokens["prompt_tokens"], tokens["completion_tokens"], tokens["total_tokens"],
            tokens["model"]) == (11, 7, 18, "llama")
    assert tokens["endpoint"] == f"127.0.0.1:{origin.port}/v1/chat/completions"
    assert dict(origin.requests[0]["headers"])["Accept-Encoding"] == "identity"


async def test_tokens_are_recorded_when_the_client_hangs_up_after_the_last_event() -> None:
    """Codex closes its stream as soon as the final event arrives: the usage it received must
    still be recorded, though the relay of what follows fails."""
    usage = (b'data: {"model":"m","choices":[],"usage":{"prompt_tokens":5,'
             b'"completion_tokens":84,"total_tokens":89}}\n\n')

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        writer.write(b"%x\r\n%s\r\n" % (len(usage), usage))
        await writer.drain()
        for _ in range(40):  # keep-alive comments after the end, until the gate gives up
            await asyncio.sleep(0.05)
            try:
                writer.write(b"c\r\n: keepalive \n\r\n")
                await writer.drain()
            except OSError:
                return
        writer.close()

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    h = Harness(policy(allow=[f"127.0.0.1:{port}"]), upstream_port=port, real_dial=True,
                meter={("127.0.0.1", port)})
    try:
        async with running(h):
            reader, writer = await h.open()
            writer.write(f"POST http://127.0.0.1:{port}/v1/responses HTTP/1.1\r\n"
                         f"Content-Length: 2\r\n\r\n{{}}".encode())
            await asyncio.wait_for(reader.readuntil(b"total_tokens"), 5)
            writer.transport.abort()  # gone, the moment it has the final event
            for _ in range(300):
                if h.kinds("tokens"):
                    break
                await asyncio.sleep(0.01)
    finally:
        server.close()
    (tokens,) = h.kinds("tokens")
    assert (tokens["prompt_tokens"], tokens["completion_tokens"]) == (5, 84)
