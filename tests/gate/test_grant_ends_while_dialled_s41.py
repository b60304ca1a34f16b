"""A grant that ends while its connection is being dialled (left over from s40's note).

The gate ends an open connection as soon as the grant it was allowed on is revoked (review
h143, s38: GateWiring.follow_grants has every gate look at once). A connection still being
dialled had no upstream for that look to end: it was let through with a 200 on a grant
already gone, and lived until the sweep's next look, up to a second later. Now a yes is
checked again once the dial completes (Deciding.yes_stands), and a connection whose grant
ended meanwhile is refused and recorded (`net.error`, stage "grant").

A real gate on a real unix socket, wired as the daemon wires it (grants, asker, veto, stands);
the dial is held by the test's harness until the grant is revoked. Only loopback addresses
and names under .invalid; the stand-in global address is routed to a local echo.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from console.daemon.evaluation import network_rules
from console.gate import GateLimits
from console.policy import new_grant

from .support import FAKE_GLOBAL, Echo, Harness, connect, running, through
from .test_gate_attacks_s23 import WAIT, _wiring

NAME = "held.corp.invalid"


class HeldDial(Harness):
    """A harness whose dials wait until the test lets them go."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dialling, self.go = asyncio.Event(), asyncio.Event()

    async def _dial(self, ip: Any, port: int, timeout: float) -> tuple[Any, Any]:
        self.dialling.set()
        await self.go.wait()
        return await super()._dial(ip, port, timeout)


async def _revoked_while_dialled(tmp_path: Path, shape: str,
                                 revoke: bool) -> tuple[int, HeldDial, bytes]:
    wiring, _, grants = _wiring(tmp_path, 'default = "ask"\n')
    grants.add(new_grant("network", f"{NAME}:80", "allow", "run", run_id="run-1",
                         profile="demo", decided_by="alice"))
    grants.add(new_grant("network", f"{NAME}:443", "allow", "run", run_id="run-1",
                         profile="demo", decided_by="alice"))
    echo = await Echo().start()
    profile = wiring.evaluator.profile("demo")
    h = HeldDial(network_rules(profile), upstream_port=echo.port, names={NAME: [FAKE_GLOBAL]},
                 ask=wiring.asker("run-1", profile), veto=wiring.veto("run-1", "demo"),
                 stands=wiring.stands("run-1", "demo"), limits=GateLimits(idle_timeout=1000.0))
    wiring.follow_grants(h.gate)
    try:
        async with running(h):
            port = 443 if shape == "connect" else 80
            if shape == "connect":
                attempt = asyncio.ensure_future(connect(h, f"{NAME}:{port}"))
            else:
                attempt = asyncio.ensure_future(through(h, "get", f"{NAME}:{port}"))
            await asyncio.wait_for(h.dialling.wait(), WAIT)
            if revoke:
                for g in grants.list():
                    grants.revoke(g.id)
            h.go.set()
            status = (await asyncio.wait_for(attempt, WAIT))[0]
            if shape == "connect" and status == 200:
                attempt.result()[4].close()
    finally:
        await echo.close()
    return status, h, bytes(echo.received)


@pytest.mark.parametrize("shape", ["connect", "get"])
async def test_a_grant_revoked_while_its_connection_dials_refuses_it(tmp_path: Path,
                                                                     shape: str) -> None:
    status, h, upstream_got = await _revoked_while_dialled(tmp_path, shape, revoke=True)
    assert status == 403 and upstream_got == b"", (
        f"{shape} went through on a grant revoked while it was dialled: {status}, "
        f"the upstream got {upstream_got!r}")
    assert [e["stage"] for e in h.kinds("net.error")] == ["grant"]


@pytest.mark.parametrize("shape", ["connect", "get"])
async def test_a_grant_that_stands_lets_its_dialled_connection_through(tmp_path: Path,
                                                                      shape: str) -> None:
    status, h, upstream_got = await _revoked_while_dialled(tmp_path, shape, revoke=False)
    if shape == "connect":
        assert status == 200
    else:  # the request reached the echo, which is no HTTP server: the gate answers 502
        assert status == 502 and upstream_got.startswith(b"GET / HTTP/1.1")
    assert not [e for e in h.kinds("net.error") if e.get("stage") == "grant"]
