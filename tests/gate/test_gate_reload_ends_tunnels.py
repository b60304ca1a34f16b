"""A config reload that denies a destination ends the connections already open to it.

Before: the gate read new rules on the next request only, so a tunnel opened a minute earlier
kept running for as long as the agent liked after the person wrote the rule to stop it (review
H, session 12). Destinations the new rules still allow, or leave to a person, stay open: a
person's yes stands. Both of the gate's tunnel paths (spliced, and asyncio streams as the
sandbox bridge hands them) and the daemon's wiring (GateWiring.apply_config) are covered.
"""

from __future__ import annotations

import asyncio

import pytest

from console.gate import NetworkRules
from tests.gate.support import Echo, Harness, running
from tests.gate.test_gate_hello_check import StreamsHarness

PATHS = [pytest.param(Harness, id="spliced"), pytest.param(StreamsHarness, id="streams")]
OK = b"HTTP/1.1 200 Connection established\r\n\r\n"


def rules(default: str = "deny", **kw: list[str]) -> NetworkRules:
    return NetworkRules(default=default, ports=[443], **kw)


async def tunnel(h: Harness, host: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await h.open()
    writer.write(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(len(OK)), 5) == OK
    return reader, writer


async def echoes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"ping")
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.readexactly(4), 3) == b"ping"
    except (asyncio.IncompleteReadError, ConnectionError):
        return False


@pytest.mark.parametrize("harness", PATHS)
async def test_a_reload_that_denies_a_destination_ends_its_open_tunnels(harness) -> None:
    echo = await Echo().start()
    h = harness(rules(allow=["cut.invalid", "kept.invalid", "asked.invalid"]),
                upstream_port=echo.port)
    try:
        async with running(h):
            cut = await tunnel(h, "cut.invalid")
            kept = await tunnel(h, "kept.invalid")
            asked = await tunnel(h, "asked.invalid")
            assert await echoes(*cut) and await echoes(*kept) and await echoes(*asked)

            # asked.invalid: no rule names it now, and the default asks a person
            ended = h.gate.replace_rules(rules("ask", allow=["kept.invalid"],
                                               deny=["cut.invalid"]))
            assert ended == 1
            assert await asyncio.wait_for(cut[0].read(), 3) == b"", "the denied tunnel is open"
            assert await echoes(*kept), "a tunnel the new rules allow was ended"
            assert await echoes(*asked), "a tunnel a person could still allow was ended"
            for _, writer in (cut, kept, asked):
                writer.close()
            for _ in range(100):
                if len(h.kinds("net.closed")) == 3:
                    break
                await asyncio.sleep(0.02)
    finally:
        await echo.close()
    how = {p["host"]: p["how"] for p in h.kinds("net.closed")}
    assert how["cut.invalid"] == "policy", how
    assert how["kept.invalid"] != "policy" and how["asked.invalid"] != "policy", how


async def test_the_daemon_applies_reloaded_rules_to_open_tunnels(tmp_path) -> None:
    """GateWiring.apply_config, what a reload calls for each live gate, with the daemon's own
    LiveConfig and PolicyEvaluator over a config file that changes."""
    from console.daemon.evaluation import PolicyEvaluator, network_rules
    from console.daemon.gate_wiring import GateWiring
    from console.daemon.live_config import LiveConfig
    from console.policy import GrantTable

    config = tmp_path / "config.toml"
    profile = '[profiles.demo]\ncommand = ["true"]\n[profiles.demo.network]\ndefault = "deny"\n'
    config.write_text(profile + 'allow = ["cut.invalid:443"]\n')
    live = LiveConfig(config)
    evaluator = PolicyEvaluator(live, GrantTable())
    wiring = GateWiring(live, evaluator, None, None, None)  # type: ignore[arg-type]
    echo = await Echo().start()
    h = Harness(network_rules(evaluator.profile("demo")), upstream_port=echo.port)
    try:
        async with running(h):
            reader, writer = await tunnel(h, "cut.invalid")
            assert await echoes(reader, writer)
            config.write_text(profile + 'deny = ["cut.invalid"]\n')
            live.cfg = await live.read_file()  # what ConfigReloader.reload applies
            wiring.apply_config(h.gate, "demo")
            assert await asyncio.wait_for(reader.read(), 3) == b""
            writer.close()
    finally:
        await echo.close()

