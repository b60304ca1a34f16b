"""The gate as a proxy, over real unix sockets to real servers: tunnels, SNI, keep-alive,
bodies, the Host header, refusals, asks, records and limits."""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import socket
from typing import Any

import pytest

from console.gate import Gate, GateLimits, NetAsk, NetworkRules, Verdict

from .support import (
    FAKE_GLOBAL,
    Echo,
    Harness,
    Origin,
    client_hello,
    connect,
    read_response,
    running,
)

OTHER_GLOBAL = ipaddress.ip_address("151.101.1.69")


def policy(**kw: Any) -> NetworkRules:
    base: dict[str, Any] = {"allow": ["example.com", "**.good.org"], "deny": ["evil.com"],
                            "default": "deny", "ports": [80, 443]}
    base.update(kw)
    return NetworkRules(**base)


@pytest.fixture
async def echo():  # type: ignore[no-untyped-def]
    e = await Echo().start()
    yield e
    await e.close()


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


# -- CONNECT ------------------------------------------------------------------------------------

async def test_real_dial_to_an_explicitly_named_loopback_port(echo: Echo) -> None:
    """No hooks: the default resolver-free path and the real dialer reach 127.0.0.1:PORT."""
    h = Harness(policy(allow=[f"127.0.0.1:{echo.port}"]), upstream_port=0, real_dial=True)
    async with running(h):
        status, _, _, reader, writer = await connect(h, f"127.0.0.1:{echo.port}")
        assert status == 200
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        writer.close()
        status, headers, body, *_ = await connect(h, f"127.0.0.1:{echo.port + 1}")
        assert status == 403 and headers["x-pilothouse-decision"] == "deny; rule=not-routable"
        assert f'"127.0.0.1:{echo.port + 1}"'.encode() in body
    assert echo.connections == 1


async def test_sni_naming_another_host_closes_the_tunnel(echo: Echo) -> None:
    h = Harness(policy(), upstream_port=echo.port)
    async with running(h):
        status, _, _, reader, writer = await connect(h, "example.com:443")
        assert status == 200
        writer.write(client_hello("evil.com"))
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the gate
        writer.close()
        await asyncio.sleep(0.05)
    assert bytes(echo.received) == b""  # the ClientHello never left
    (mismatch,) = h.kinds("net.sni_mismatch")
    assert mismatch["sni"] == "evil.com" and mismatch["host"] == "example.com"
    assert h.kinds("net.closed")


async def test_matching_sni_passes_byte_for_byte(echo: Echo) -> None:
    hello = client_hello("EXAMPLE.com")
    h = Harness(policy(), upstream_port=echo.port)
    async with running(h):
        status, _, _, reader, writer = await connect(h, "example.com:443")
        assert status == 200
        # Split the ClientHello so the gate must wait for the rest before deciding.
        writer.write(hello[:3])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(hello[3:])
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(len(hello)), 5) == hello
        writer.close()
    assert not h.kinds("net.sni_mismatch")


async def test_no_sni_and_non_tls_pass(echo: Echo) -> None:
    h = Harness(policy(), upstream_port=echo.port)
    async with running(h):
        for first in (client_hello(None), b"SSH-2.0-OpenSSH_9.6\r\n"):
            status, _, _, reader, writer = await connect(h, "example.com:443")
            assert status == 200
            writer.write(first)
            assert await asyncio.wait_for(reader.readexactly(len(first)), 5) == first
            writer.close()


async def test_server_speaks_first_through_a_tunnel() -> None:
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 hello\r\n")
        await writer.drain()
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(banner, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    h = Harness(policy(allow=["example.com:25"]), upstream_port=port)
    async with running(h):
        status, _, _, reader, writer = await connect(h, "example.com:25")
        assert status == 200
        assert await asyncio.wait_for(reader.readline(), 5) == b"220 hello\r\n"
        writer.write(b"EHLO me\r\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"EHLO me\r\n"
        writer.close()
    server.close()
    (closed,) = h.kinds("net.closed")
    assert closed["bytes_up"] == 9 and closed["bytes_down"] == 20 and closed["duration_s"] >= 0


async def test_tunnel_records_decision_then_closed(echo: Echo) -> None:
    h = Harness(policy(), upstream_port=echo.port)
    async with running(h):
        status, _, _, reader, writer = await connect(h, "example.com:443")
        writer.write(b"x" * 1000)
        await reader.readexactly(1000)
        writer.close()
        for _ in range(100):
            if h.kinds("net.closed"):
                break
            await asyncio.sleep(0.01)
    (decision,) = h.kinds("net.decision")
    assert decision == {
        "run_id": "run-1", "host": "example.com", "port": 443, "method": "CONNECT",
        "target": "example.com:443", "address": str(FAKE_GLOBAL),
        "addresses": [str(FAKE_GLOBAL)], "action": "allow", "rule": "example.com",
        "source": None, "reason": "allowed by rule example.com", "basis": "rule",
        "asked": False, "provenance": None}
    (closed,) = h.kinds("net.closed")
    assert (closed["bytes_up"], closed["bytes_down"]) == (1000, 1000)
    assert [k for k, _ in h.records] == ["net.decision", "net.closed"]


async def test_resolved_name_to_private_address_is_denied(echo: Echo) -> None:
    """DNS that answers with a private address (rebinding) is denied, even for an allowed
    name, and even when only one of several answers is private."""
    private = ipaddress.ip_address("10.0.0.5")
    h = Harness(policy(), upstream_port=echo.port,
                names={"example.com": [FAKE_GLOBAL, private]})
    async with running(h):
        status, headers, body, *_ = await connect(h, "example.com:443")
    assert status == 403 and headers["x-pilothouse-decision"] == "deny; rule=not-routable"
    assert b'"10.0.0.5:443"' in body and not h.dialled


async def test_dials_only_checked_addresses_in_order(echo: Echo) -> None:
    h = Harness(policy(), upstream_port=echo.port,
                names={"example.com": [FAKE_GLOBAL, OTHER_GLOBAL]})
    async with running(h):
        status, *_ = await connect(h, "example.com:443")
    assert status == 200 and h.dialled == [(str(FAKE_GLOBAL), 443)]


async def test_deny_body_says_which_rule_and_how_to_allow(echo: Echo) -> None:
    rules = NetworkRules(allow=[], deny=[("evil.com", "config.toml:12")], default="deny")
    h = Harness(rules, upstream_port=echo.port)
    async with running(h):
        status, headers, body, *_ = await connect(h, "EVIL.com.:443")
        assert status == 403
        assert headers["x-pilothouse-decision"] == "deny; rule=evil.com"
        text = body.decode()
        assert "evil.com" in text and "config.toml:12" in text
        assert "[profiles.demo.network] deny" in text
        status, headers, body, *_ = await connect(h, "other.org:8443")
        assert headers["x-pilothouse-decision"] == "deny; rule=default"
        assert 'add "other.org:8443" to [profiles.demo.network] allow' in body.decode()
    assert h.kinds("net.decision")[0]["source"] == "config.toml:12"


# -- asks -----------------------------------------------------------------------------------------

async def test_concurrent_connections_share_one_ask(echo: Echo) -> None:
    questions: list[NetAsk] = []
    release = asyncio.Event()

    async def ask(q: NetAsk) -> Verdict:
        questions.append(q)
        await release.wait()
        return Verdict(True, {"by": "alice", "grant": "once"})

    h = Harness(policy(default="ask"), upstream_port=echo.port, ask=ask)
    async with running(h):
        tasks = [asyncio.create_task(connect(h, "new.example.net:443")) for _ in range(3)]
        for _ in range(500):
            if h.gate.pending_asks() == {("new.example.net", 443): 3}:
                break
            await asyncio.sleep(0.01)
        assert h.gate.pending_asks() == {("new.example.net", 443): 3}
        release.set()
        results = await asyncio.gather(*tasks)
        assert [r[0] for r in results] == [200, 200, 200]
        for r in results:
            r[4].close()
    assert len(questions) == 1
    q = questions[0]
    assert (q.run_id, q.host, q.port, q.addresses) == ("run-1", "new.example.net", 443,
                                                       (str(FAKE_GLOBAL),))
    assert q.suggestion == "new.example.net"
    decisions = h.kinds("net.decision")
    assert len(decisions) == 3 and all(d["provenance"] == {"by": "alice", "grant": "once"}
                                       for d in decisions)
    assert len(h.dialled) == 3


@pytest.mark.parametrize("how", ["raises", "times out", "none", "bad answer"])
async def test_ask_failure_denies(echo: Echo, how: str) -> None:
    async def ask(q: NetAsk) -> Any:
        if how == "raises":
            raise RuntimeError("inbox is gone")
        if how == "times out":
            await asyncio.sleep(30)
        return "yes"

    h = Harness(policy(default="ask"), upstream_port=echo.port,
                ask=None if how == "none" else ask, limits=GateLimits(ask_timeout=0.2))
    async with running(h):
        status, headers, _, *_ = await connect(h, "new.example.net:443")
    assert status == 403 and headers["x-pilothouse-decision"] == "deny; rule=asked"
    assert not h.dialled and h.kinds("net.decision")[0]["action"] == "deny"


async def test_unrecorded_decision_is_refused(echo: Echo) -> None:
    h = Harness(policy(), upstream_port=echo.port, record_fails=True)
    async with running(h):
        status, headers, _, *_ = await connect(h, "example.com:443")
    assert status == 503 and headers["x-pilothouse-decision"] == "deny; rule=unrecorded"
    assert not h.dialled


# -- limits -------------------------------------------------------------------------------------

async def test_tunnel_limit(echo: Echo) -> None:
    h = Harness(policy(), upstream_port=echo.port, limits=GateLimits(max_tunnels=1))
    async with running(h):
        first = await connect(h, "example.com:443")
        assert first[0] == 200
        second = await connect(h, "example.com:443")
        assert second[0] == 503 and b"limit 1" in second[2]
        first[4].close()
        for _ in range(200):
            if h.gate.tunnels == 0:
                break
            await asyncio.sleep(0.01)
        third = await connect(h, "example.com:443")
        assert third[0] == 200
        third[4].close()


async def test_header_limit(echo: Echo) -> None:
    h = Harness(policy(), upstream_port=echo.port, limits=GateLimits(max_header_bytes=1024))
    async with running(h):
        status, *_ = await connect(h, "example.com:443", b"X-Junk: " + b"a" * 2000 + b"\r\n")
    assert status == 431 and not h.dialled


async def test_idle_tunnel_is_closed(echo: Echo) -> None:
    h = Harness(policy(), upstream_port=echo.port, limits=GateLimits(idle_timeout=0.3))
    async with running(h):
        status, _, _, reader, writer = await connect(h, "example.com:443")
        assert status == 200
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    assert h.kinds("net.closed")[0]["how"] == "idle"


async def test_idle_client_connection_is_dropped(echo: Echo) -> None:
    h = Harness(policy(), upstream_port=echo.port, limits=GateLimits(idle_timeout=0.2))
    async with running(h):
        reader, writer = await h.open()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_close_ends_everything(echo: Echo) -> None:
    h = Harness(policy(), upstream_port=echo.port)
    await h.gate.serve_unix(h.path)
    status, _, _, reader, writer = await connect(h, "example.com:443")
    assert status == 200
    await h.close()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert h.gate.tunnels == 0


async def test_handle_accepts_any_stream_pair(echo: Echo) -> None:
    """The bridge hands the gate plain asyncio streams (here: a TCP listener)."""
    records: list[tuple[str, dict]] = []

    async def dial(ip: Any, port: int, timeout: float) -> Any:
        return await asyncio.open_connection("127.0.0.1", echo.port)

    async def resolver(host: str, port: int) -> list[Any]:
        return [FAKE_GLOBAL]

    gate = Gate("r", policy(), ask=None, record=lambda k, p: records.append((k, p)),
                resolver=resolver, dial=dial)
    server = await asyncio.start_server(gate.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"CONNECT example.com:443 HTTP/1.1\r\n\r\nabc")
    assert (await read_response(reader))[0] == 200
    assert await reader.readexactly(3) == b"abc"
    writer.close()
    server.close()
    await gate.close()
    assert records[0][0] == "net.decision"  # a synchronous record callback works too


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
