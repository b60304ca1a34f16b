"""The gate over real unix sockets to real servers: CONNECT tunnels, SNI, refusals, asks,
records and limits. Absolute-form HTTP is in test_gate_http.py."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest

from console.gate import Gate, GateLimits, NetAsk, NetworkRules, Verdict

from .support import (
    FAKE_GLOBAL,
    Echo,
    Harness,
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
    # The sandbox is not told where the name points (no DNS oracle); the record says.
    assert b"10.0.0.5" not in body and not h.dialled
    assert "10.0.0.5" in h.kinds("net.decision")[0]["addresses"]


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
    # The person is asked about the name before any lookup (so no addresses yet).
    assert (q.run_id, q.host, q.port, q.addresses) == ("run-1", "new.example.net", 443, ())
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


async def test_a_slow_person_does_not_trip_the_idle_timeout(echo: Echo) -> None:
    async def ask(q: NetAsk) -> Verdict:
        await asyncio.sleep(0.8)
        return Verdict(True, {"by": "slow"})

    h = Harness(policy(default="ask"), upstream_port=echo.port, ask=ask,
                limits=GateLimits(idle_timeout=0.2))
    async with running(h):
        status, *_ , writer = await connect(h, "new.example.net:443")
        assert status == 200
        writer.close()


@pytest.mark.parametrize("allow", [True, False])
async def test_a_name_that_does_not_resolve_is_still_asked_about(echo: Echo, allow: bool) -> None:
    """Offline, or a made-up name: the person still sees the attempt; allowed, it fails at DNS
    (502), denied, it is a 403. Either way the decision is recorded."""
    questions: list[NetAsk] = []

    async def ask(q: NetAsk) -> Verdict:
        questions.append(q)
        return Verdict(allow, {"by": "alice"})

    h = Harness(policy(default="ask"), upstream_port=echo.port, ask=ask,
                names={"nowhere.example.net": []})
    async with running(h):
        status, headers, body, *_ = await connect(h, "nowhere.example.net:443")
    assert [q.addresses for q in questions] == [()]
    (decision,) = h.kinds("net.decision")
    assert decision["action"] == ("allow" if allow else "deny") and decision["asked"]
    if allow:
        assert status == 502 and b"could not resolve" in body
        assert h.kinds("net.error")[0]["stage"] == "resolve"
    else:
        assert status == 403
    assert not h.dialled
