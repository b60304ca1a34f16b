"""Review h178: a spliced tunnel that ended is freed at once, not left to the cyclic garbage
collector. A SplicedTunnel and its two directions referred to each other, and so did a tunnel's
hello check and its on_server callback: about fifteen objects a tunnel (its two sockets among
them) stayed until a collection found them, and in bench/gate.py those collections took about
3% of the gate's CPU per tunnel."""

from __future__ import annotations

import gc

from console.gate import NetworkRules
from console.gate.splice import SplicedTunnel
from console.gate.tls import HelloCheck

from .support import Echo, Harness, echo_tunnels, running


def _alive(kind: type) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is kind)


async def test_an_ended_tunnel_is_freed_without_the_cyclic_collector() -> None:
    echo = await Echo().start()
    h = Harness(NetworkRules(allow=["example.com"], default="deny", ports=[443]),
                upstream_port=echo.port)
    gc.collect()
    gc.disable()  # what is still there below was kept by a reference cycle, nothing else
    try:
        before = (_alive(SplicedTunnel), _alive(HelloCheck))
        async with running(h):
            await echo_tunnels(h)
        # The gate is closed: every connection's handler has returned.
        after = (_alive(SplicedTunnel), _alive(HelloCheck))
    finally:
        gc.enable()
        await echo.close()
    assert len(h.kinds("net.decision")) == 3, h.records  # three tunnels were spliced
    assert after == before, f"(tunnels, hello checks) alive: {before} before, {after} after"
