"""A client that sends its CONNECT head with a foreign hello behind it and closes before the
gate answers 200: the 200 fails, yet the hello it sent is still checked and the refusal
recorded (proxy._connect's promise). Seen once as a flake of test_gate_hello_attacks'
behind-the-head-then-close shape on a loaded machine (its close came before the 200); here
the dial waits for the client's close, so the order is the same every time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.gate.support import Echo, Harness
from tests.gate.test_gate_hello_attacks import (
    EVIL,
    HEAD,
    AsyncioClientHarness,
    closed_record,
    policy,
    serving,
    unix_client,
)
from tests.gate.test_gate_hello_check import StreamsHarness


class DialsAfterTheClientIsGone:
    """Its dial waits until the test says the client has closed (`gone`)."""

    gone: asyncio.Event

    async def _dial(self, ip: Any, port: int, timeout: float) -> tuple[Any, Any]:
        await self.gone.wait()
        return await super()._dial(ip, port, timeout)  # type: ignore[misc]


class Spliced(DialsAfterTheClientIsGone, Harness):
    pass


class Streams(DialsAfterTheClientIsGone, StreamsHarness):
    pass


class AsyncioClient(DialsAfterTheClientIsGone, AsyncioClientHarness):
    pass


@pytest.mark.parametrize("harness", [pytest.param(Spliced, id="spliced"),
                                     pytest.param(Streams, id="streams"),
                                     pytest.param(AsyncioClient, id="asyncio-client")])
async def test_a_foreign_hello_of_a_client_gone_before_the_200_is_recorded(
        harness: type[Harness]) -> None:
    echo = await Echo().start()
    h = harness(policy(), upstream_port=echo.port)
    h.gone = asyncio.Event()  # type: ignore[attr-defined]
    async with serving(h):
        s = await unix_client(h)
        await asyncio.get_running_loop().sock_sendall(s, HEAD + EVIL)
        s.close()
        h.gone.set()  # type: ignore[attr-defined]
        closed = await closed_record(h)
    await echo.close()
    assert bytes(echo.received) == b""
    assert closed["bytes_up"] == 0 and closed["how"] == "error"
    # Before the fix (asyncio-client): none, the failed 200 had put its error in the reader
    # ahead of the hello it held.
    assert [m["sni"] for m in h.kinds("net.sni_mismatch")] == ["evil.com"], h.records
