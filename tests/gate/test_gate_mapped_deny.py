"""A deny rule written in IPv4-mapped IPv6 form (`[::ffff:a.b.c.d]`, as dual-stack logs print
addresses) denies the same destination reached as plain IPv4, by literal or by a name resolving
to it (found by an attack review: it did not); the other direction already held.

docs/policy.md: "Deny wins over allow, allow over the default." console/policy/network.py:
"deny rule (host, or any address through any wrapper) -> deny". The gate's own docstring
(netrules.Pattern.matches_address) calls the mapped form "the same socket destination".
"""

from __future__ import annotations

import pytest

from console.gate import NetworkRules

from .support import FAKE_GLOBAL, Echo, Harness, connect, running

MAPPED = f"[::ffff:{FAKE_GLOBAL}]"


@pytest.fixture
async def echo():  # type: ignore[no-untyped-def]
    e = await Echo().start()
    yield e
    await e.close()


async def test_plain_ipv4_deny_covers_the_mapped_form(echo: Echo) -> None:
    """The direction that holds (for contrast)."""
    h = Harness(NetworkRules(deny=[str(FAKE_GLOBAL)], default="allow"), upstream_port=echo.port)
    async with running(h):
        status, *_, writer = await connect(h, f"{MAPPED}:443")
        writer.close()
    assert status == 403 and not h.dialled


@pytest.mark.parametrize("rule", [MAPPED, "[::ffff:93.184.215.0/120]"])
@pytest.mark.parametrize("target", [f"{FAKE_GLOBAL}:443", "cdn.invalid:443"])
async def test_mapped_deny_rule_covers_plain_ipv4(echo: Echo, rule: str, target: str) -> None:
    h = Harness(NetworkRules(deny=[rule], default="allow"), upstream_port=echo.port,
                names={"cdn.invalid": [FAKE_GLOBAL]})
    async with running(h):
        status, *_, writer = await connect(h, target)
        writer.close()
    assert status == 403, f"deny {rule} let {target} through; dialled {h.dialled}"
