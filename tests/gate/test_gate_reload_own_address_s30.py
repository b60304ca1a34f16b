"""Review s30 (helper 102): a reload that takes away the rule naming an address of this machine.

A new connection to one of this machine's own addresses is denied unless an allow rule names it
(console/gate/own.py). A reload checked the tunnels already open against the rules alone
(Deciding.denied_now), so one opened under `allow = ["<own address>:8080"]` stayed open after
the rule was removed, and carried bytes, while a new CONNECT to it got 403. The same check
runs after a dial (a reload while it dialled). Both now read the verdict a new connection gets.
"""

from __future__ import annotations

import asyncio

import pytest

from console.gate import NetworkRules
from tests.gate.support import FAKE_GLOBAL, Echo, running
from tests.gate.test_gate_own_address_s20 import this_machine  # noqa: F401 (a fixture)
from tests.gate.test_gate_reload_ends_tunnels import OK, PATHS, echoes

TARGET = f"{FAKE_GLOBAL}:8080"  # this machine's, in the kernel lists the fixture fakes


@pytest.mark.usefixtures("this_machine")
@pytest.mark.parametrize("harness", PATHS)
async def test_a_reload_ends_tunnels_to_this_machine_no_rule_names_now(harness) -> None:
    echo = await Echo().start()
    h = harness(NetworkRules(allow=[TARGET], default="ask", ports=[443]), upstream_port=echo.port)
    try:
        async with running(h):
            reader, writer = await h.open()
            writer.write(f"CONNECT {TARGET} HTTP/1.1\r\nHost: {TARGET}\r\n\r\n".encode())
            await writer.drain()
            assert await asyncio.wait_for(reader.readexactly(len(OK)), 5) == OK
            assert await echoes(reader, writer)
            ended = h.gate.replace_rules(NetworkRules(allow=[], default="ask", ports=[443]))
            assert ended == 1, "the tunnel to this machine's own address was left open"
            assert await asyncio.wait_for(reader.read(), 3) == b""
            writer.close()
            for _ in range(100):
                if h.kinds("net.closed"):
                    break
                await asyncio.sleep(0.02)
    finally:
        await echo.close()
    assert [p["how"] for p in h.kinds("net.closed")] == ["policy"]
