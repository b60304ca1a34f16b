"""No name leaves before a yes: under "ask" the gate puts the name to a person first and looks
it up only after an allow; a 403 never tells the sandbox what a name resolved to; lookups
are rate-limited per run; caps on connections and head time hold on a real unix socket."""

from __future__ import annotations

import asyncio
import ipaddress
import time

from console.gate import GateLimits, NetAsk, NetworkRules, Verdict

from .support import Echo, Harness, connect, read_response, running


def ask_policy(**kw: object) -> NetworkRules:
    return NetworkRules(allow=kw.get("allow", ["pypi.org"]), deny=["**.blocked.invalid"],  # type: ignore[arg-type]
                        default="ask")


async def test_many_unique_names_under_ask_are_not_resolved_before_an_answer() -> None:
    echo = await Echo().start()
    questions: list[NetAsk] = []
    answer = asyncio.Event()

    async def ask(q: NetAsk) -> Verdict:
        questions.append(q)
        await answer.wait()
        return Verdict(True, {"by": "alice"})

    h = Harness(ask_policy(), upstream_port=echo.port, ask=ask,
                limits=GateLimits(max_connections=600, lookups_per_second=1000))
    async with running(h):
        tasks = []
        for batch in range(10):  # in batches: the listen backlog is 100
            tasks += [asyncio.create_task(connect(h, f"d{i}-secret.exfil.invalid:443"))
                      for i in range(batch * 50, batch * 50 + 50)]
            for _ in range(1000):
                if len(questions) == len(tasks):
                    break
                await asyncio.sleep(0.01)
        assert len(questions) == 500
        assert h.resolved == [], f"{len(h.resolved)} names reached the resolver before a yes"
        assert all(q.addresses == () for q in questions), "the person sees the name, no address"
        answer.set()
        results = await asyncio.gather(*tasks)
        for r in results:
            r[4].close()
    assert len(h.resolved) == 500  # looked up only after the allow
    await echo.close()


async def test_a_denied_ask_is_never_resolved() -> None:
    echo = await Echo().start()

    async def ask(q: NetAsk) -> Verdict:
        return Verdict(False, {"by": "alice"})

    h = Harness(ask_policy(), upstream_port=echo.port, ask=ask)
    async with running(h):
        status, *_ = await connect(h, "unknown.example.net:443")
    assert status == 403 and h.resolved == [] and not h.dialled
    await echo.close()


async def test_403_never_tells_the_sandbox_a_resolved_address() -> None:
    """An allowed name (by rule or by a person) that resolves into the local network is
    denied, and the answer does not say which address it was (no DNS oracle)."""
    echo = await Echo().start()

    async def ask(q: NetAsk) -> Verdict:
        return Verdict(True, {"by": "alice"})

    private = ipaddress.ip_address("10.20.30.40")
    h = Harness(ask_policy(), upstream_port=echo.port, ask=ask,
                names={"pypi.org": [private], "intranet.example.net": [private]})
    async with running(h):
        for target in ("pypi.org:443", "intranet.example.net:443"):
            status, headers, body, *_ = await connect(h, target)
            assert status == 403 and headers["x-pilothouse-decision"] == "deny; rule=not-routable"
            assert b"10.20.30.40" not in body and b"10.20" not in body, body
        reader, writer = await h.open()
        writer.write(b"GET http://intranet.example.net/ HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert status == 403 and b"10.20.30.40" not in body
        writer.close()
    # The person's record keeps the address: the daemon knows, the sandbox does not.
    assert all(d["address"] == "10.20.30.40" for d in h.kinds("net.decision"))
    await echo.close()


async def test_lookups_are_rate_limited_per_run() -> None:
    echo = await Echo().start()
    h = Harness(NetworkRules(allow=["**.allowed.invalid"], default="deny"),
                upstream_port=echo.port, limits=GateLimits(lookups_per_second=5))
    async with running(h):
        statuses = []
        started = time.monotonic()
        for i in range(20):
            status, _, _, _, writer = await connect(h, f"n{i}.allowed.invalid:443")
            statuses.append(status)
            writer.close()
        elapsed = time.monotonic() - started
    # A burst of 5, then 5 more each second the loop took: a loaded machine (CI runs files
    # side by side) earns the bucket a token or two more, never the 20 an unlimited gate does.
    allowed = 5 + int(5 * elapsed) + 1
    assert len(h.resolved) <= allowed, f"{len(h.resolved)} lookups in {elapsed:.2f} s"
    assert statuses.count(503) >= 20 - allowed
    await echo.close()


async def test_connections_past_the_cap_are_refused_at_once() -> None:
    echo = await Echo().start()
    h = Harness(ask_policy(), upstream_port=echo.port, limits=GateLimits(max_connections=3))
    async with running(h):
        held = [await h.open() for _ in range(3)]
        await asyncio.sleep(0.05)
        reader, writer = await h.open()
        status, _, body = await read_response(reader)
        assert status == 503 and b"connections" in body
        writer.close()
        for _, w in held:
            w.close()
    await echo.close()


async def test_a_head_not_sent_in_time_is_closed() -> None:
    echo = await Echo().start()
    h = Harness(ask_policy(), upstream_port=echo.port, limits=GateLimits(head_timeout=0.3))
    async with running(h):
        reader, writer = await h.open()
        writer.write(b"CONNECT pypi.org:443 HTTP/1.1\r\nX-Slow: aaaa")
        await writer.drain()
        status, _, _ = await asyncio.wait_for(read_response(reader), 5)
        assert status == 408
        writer.close()
    assert not h.dialled
    await echo.close()
