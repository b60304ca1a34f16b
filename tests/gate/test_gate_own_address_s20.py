"""Review s20 (gate): an address of this machine itself is denied as loopback is.

docs/threat-model.md keeps "local and metadata addresses" out "unless a rule names them", and
the gate denied loopback and private ranges by their tables. A machine with a global address
(a server's public IPv4 on eth0, a laptop's IPv6) answers on it too: `CONNECT <that
address>:5432`, or a name resolving to it (any wildcard DNS service), reached every service
listening on 0.0.0.0 or [::] there, as a global destination an allow rule or a person's yes
(the card says "resolves to: none yet" for a name) let through. The kernel's list of local
addresses is now consulted (console/gate/own.py); here a fake one names a global test address
as this machine's, so nothing is dialled but the local test server.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from console.gate import NetAsk, NetworkRules, Verdict, own

from .support import FAKE_GLOBAL, Echo, Harness, connect, running

OWN_V6 = ipaddress.ip_address("2001:4860:4860::8888")  # in the fake list only; never dialled
FIB_TRIE = f"""Main:
  +-- 0.0.0.0/0 3 0 4
     +-- 127.0.0.0/8 2 0 2
           |-- 127.0.0.0
              /8 host LOCAL
     +-- 93.184.215.0/24 2 0 2
           |-- 93.184.215.0
              /24 link UNICAST
           |-- {FAKE_GLOBAL}
              /32 host LOCAL
           |-- 93.184.215.255
              /32 link BROADCAST
"""
IF_INET6 = ("00000000000000000000000000000001 01 80 10 80       lo\n"
            f"{int(OWN_V6):032x} 02 40 00 00     eth0\n")
ANYIP_V6 = ipaddress.ip_network("2a00:1450:4001::/64")  # a local route: all of it answers here
ZERO = "0" * 32
IPV6_ROUTE = (f"{int(ANYIP_V6.network_address):032x} 40 {ZERO} 00 {ZERO} 00000000 00000001 "
              "00000000 80200001       lo\n"
              f"{ZERO} 00 {ZERO} 00 {ZERO} ffffffff 00000001 00000000 00200200       lo\n")


@pytest.fixture
def this_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's lists, as on a machine whose eth0 has FAKE_GLOBAL and OWN_V6."""
    (tmp_path / "fib_trie").write_text(FIB_TRIE)
    (tmp_path / "if_inet6").write_text(IF_INET6)
    (tmp_path / "ipv6_route").write_text(IPV6_ROUTE)
    monkeypatch.setattr(own, "FIB_TRIE", str(tmp_path / "fib_trie"))
    monkeypatch.setattr(own, "IF_INET6", str(tmp_path / "if_inet6"))
    monkeypatch.setattr(own, "IPV6_ROUTE", str(tmp_path / "ipv6_route"))
    monkeypatch.setattr(own, "_cache", None)


def test_the_real_kernel_lists_name_loopback_and_not_a_global_address(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(own, "_cache", None)
    mine = own.own_addresses()
    for text in ("127.0.0.1", "127.3.4.5", "::1", "::ffff:127.0.0.1"):
        assert mine.covers(ipaddress.ip_address(text)) is not None, text
    assert mine.covers(FAKE_GLOBAL) is None
    assert mine.covers(ipaddress.ip_address("2001:4860:4860::8888")) is None  # not the default route


def _person(questions: list[NetAsk]):  # type: ignore[no-untyped-def]
    async def person(q: NetAsk) -> Verdict:
        questions.append(q)
        return Verdict(True, {"by": "alice", "grant": "once"})
    return person


@pytest.mark.usefixtures("this_machine")
@pytest.mark.parametrize(("rules", "target"), [
    (NetworkRules(allow=["self.invalid"], default="deny", ports=[443]), "self.invalid:443"),
    (NetworkRules(default="allow", ports=[5432]), f"{FAKE_GLOBAL}:5432"),
    (NetworkRules(default="allow", ports=[22]), f"[::ffff:{FAKE_GLOBAL}]:22"),
    (NetworkRules(default="allow", ports=[8080]), f"[{OWN_V6}]:8080"),
    (NetworkRules(default="allow", ports=[8080]), f"[{ANYIP_V6.network_address + 7}]:8080"),
    (NetworkRules(default="ask", ports=[443]), "self.invalid:443"),
    (NetworkRules(allow=["10.9.8.0/24:443"], default="ask", ports=[443]), "self.invalid:443"),
], ids=["name-allowed-by-rule", "literal-default-allow", "mapped", "ipv6", "ipv6-local-route",
        "asked-yes",
        "resolved-first"])
async def test_this_machines_own_address_is_never_dialled(rules: NetworkRules,
                                                           target: str) -> None:
    echo = await Echo().start()
    questions: list[NetAsk] = []
    h = Harness(rules, upstream_port=echo.port, names={"self.invalid": [FAKE_GLOBAL]},
                ask=_person(questions))
    try:
        async with running(h):
            status, _, body, _, writer = await connect(h, target)
            writer.close()
    finally:
        await echo.close()
    assert status == 403, (status, body)
    assert h.dialled == []
    # (unless the agent wrote it: the mapped form is shown dotted since s23)
    assert str(FAKE_GLOBAL) not in body.decode() or str(FAKE_GLOBAL) in target
    (decision,) = h.kinds("net.decision")
    assert decision["action"] == "deny" and "this machine" in decision["reason"]


@pytest.mark.usefixtures("this_machine")
async def test_a_rule_naming_the_address_still_opens_it() -> None:
    echo = await Echo().start()
    h = Harness(NetworkRules(allow=[f"{FAKE_GLOBAL}:8080"], default="deny", ports=[443]),
                upstream_port=echo.port)
    try:
        async with running(h):
            status, *_, writer = await connect(h, f"{FAKE_GLOBAL}:8080")
            writer.close()
    finally:
        await echo.close()
    assert status == 200 and h.dialled == [(str(FAKE_GLOBAL), 8080)]


async def test_unreadable_kernel_lists_refuse(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(own, "IF_INET6", str(tmp_path / "missing"))
    monkeypatch.setattr(own, "_cache", None)
    echo = await Echo().start()
    h = Harness(NetworkRules(allow=["api.invalid"], default="deny", ports=[443]),
                upstream_port=echo.port)
    try:
        async with running(h):
            status, *_, writer = await connect(h, "api.invalid:443")
            writer.close()
    finally:
        await echo.close()
    assert status == 403 and h.dialled == []
    assert "could not be read" in h.kinds("net.decision")[0]["reason"]


@pytest.mark.usefixtures("this_machine")
@pytest.mark.parametrize("subject", [f"{FAKE_GLOBAL}:5432", "db.wildcard.invalid:5432", f"[{OWN_V6}]:22"])
async def test_policy_check_says_what_the_gate_does_for_this_machines_address(subject: str) -> None:
    """`policy check --host --resolve` answered allow where the gate now denies (the decision
    was in the gate only): both ask console/gate/own.py's this_machine after the rules."""
    from console.gate.check import check_network

    async def resolve(host: str, port: int) -> list:
        return [FAKE_GLOBAL]

    rules = NetworkRules(allow=["db.wildcard.invalid:5432"], default="allow", ports=[443])
    out = await check_network(rules, subject, resolver=resolve)
    assert out["action"] == "deny" and "this machine itself" in out["describe"], out
    named = NetworkRules(allow=[f"{FAKE_GLOBAL}:5432", "db.wildcard.invalid:5432"], default="deny", ports=[443])
    if "[" not in subject:
        assert (await check_network(named, subject, resolver=resolve))["action"] == "allow"


@pytest.mark.usefixtures("this_machine")
def test_ph_ask_net_says_what_the_gate_does_for_this_machines_address(tmp_path: Path) -> None:
    """agent.sock's `ph-ask net ADDRESS:PORT` answered allow for an address the gate denies."""
    from console.daemon.evaluation import PolicyEvaluator
    from console.daemon.live_config import LiveConfig
    from console.policy import GrantTable

    config = tmp_path / "config.toml"
    config.write_text('[profiles.p]\ncommand = ["true"]\n[profiles.p.network]\ndefault = "allow"\n')
    evaluator = PolicyEvaluator(LiveConfig(config), GrantTable())
    mine = evaluator.network_ask(f"{FAKE_GLOBAL}:5432", "run1", "p")
    assert mine.action == "deny" and "this machine itself" in mine.provenance.describe(), mine
    assert evaluator.network_ask("93.184.215.15:5432", "run1", "p").action == "allow"  # not ours
