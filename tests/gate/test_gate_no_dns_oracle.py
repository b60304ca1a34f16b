"""The gate's answers never tell the sandbox what a name resolved to, found by an attack review:
the 403 for a name denied by an IP deny rule (matched on its resolved address) named the address
(or range), and a 502 after a failed dial quoted it.

docs/threat-model.md: "A 403 never says what a name resolved to (that would make the gate a DNS
oracle into the local network); the decision recorded for the person has the addresses."
"""

from __future__ import annotations

import ipaddress

import pytest

from console.gate import NetworkRules

from .support import Echo, Harness, connect, read_response, running


@pytest.fixture
async def echo():  # type: ignore[no-untyped-def]
    e = await Echo().start()
    yield e
    await e.close()


@pytest.mark.parametrize("deny", ["10.9.8.7", "10.9.8.0/24", "[fd00:1::/32]"])
async def test_ip_deny_rule_403_does_not_reveal_the_resolved_address(echo: Echo,
                                                                       deny: str) -> None:
    secret = ipaddress.ip_address("fd00:1::7" if "fd00" in deny else "10.9.8.7")
    h = Harness(NetworkRules(allow=["**.corp.invalid"], deny=[deny], default="ask"),
                upstream_port=echo.port, names={"db.corp.invalid": [secret]})
    async with running(h):
        status, headers, body, _, writer = await connect(h, "db.corp.invalid:443")
        writer.close()
        reader, writer = await h.open()
        writer.write(b"GET http://db.corp.invalid/ HTTP/1.1\r\nHost: x\r\n\r\n")
        status2, headers2, body2 = await read_response(reader)
        writer.close()
    assert status == 403 and status2 == 403 and not h.dialled
    rule_text = deny.strip("[]").split("/")[0]
    # The sandbox may learn that the name is denied; not where it points.
    leaked = [where for where, text in (("body", body.decode()), ("body2", body2.decode()),
                                        ("header", headers["x-pilothouse-decision"]))
              if rule_text in text]
    assert not leaked, (leaked, body.decode(), headers["x-pilothouse-decision"])


class Refusing(Harness):
    """Every dial is refused (the address exists, nothing listens on the port)."""

    async def _dial(self, ip, port, timeout):  # type: ignore[no-untyped-def]
        self.dialled.append((str(ip), port))
        raise ConnectionRefusedError(111, "Connection refused")


async def test_502_does_not_reveal_the_resolved_address(echo: Echo) -> None:
    """A name allowed by an IP CIDR rule (the shared corpus's `10.1.2.0/24`) whose dial fails:
    the 502 quotes the resolved address to the sandbox."""
    secret = ipaddress.ip_address("10.1.2.77")
    h = Refusing(NetworkRules(allow=["10.1.2.0/24"], default="ask"), upstream_port=echo.port,
                 names={"db.corp.invalid": [secret]})
    async with running(h):
        status, _, body, _, writer = await connect(h, "db.corp.invalid:443")
        writer.close()
    assert status == 502 and h.dialled == [("10.1.2.77", 443)]
    assert b"10.1.2.77" not in body, body.decode()
