"""An IP or CIDR allow rule opens a name resolving into it only under default = "ask"; under
default = "deny" the gate and `policy check --resolve` both refuse the name by name, without a
lookup (review s33: policy.md now says so; looking up whatever name an agent writes would carry
data out through DNS)."""

from __future__ import annotations

import ipaddress

from console.gate import NetworkRules
from console.gate.check import check_network

from .support import Echo, Harness, connect, running

ADDR = ipaddress.ip_address("10.1.2.5")


def rules(default: str) -> NetworkRules:
    return NetworkRules(["10.1.2.0/24:443"], [], default)


async def test_a_cidr_allow_rule_opens_a_name_under_ask_only_and_both_paths_agree() -> None:
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[ipaddress.IPv4Address]:
        lookups.append(host)
        return [ADDR]

    checked = {d: (await check_network(rules(d), "db.corp.invalid:443",
                                       resolver=resolver))["decision"] for d in ("ask", "deny")}
    echo = await Echo().start()
    gate = {}
    for default in ("ask", "deny"):
        h = Harness(rules(default), upstream_port=echo.port, names={"db.corp.invalid": [ADDR]})
        async with running(h):
            status, *_, writer = await connect(h, "db.corp.invalid:443")
            writer.close()
            gate[default] = (status, list(h.resolved))
    await echo.close()
    assert checked == {"ask": "allow", "deny": "deny"}
    assert gate == {"ask": (200, ["db.corp.invalid"]), "deny": (403, [])}
    assert lookups == ["db.corp.invalid"]  # policy check looked up only under "ask" too
