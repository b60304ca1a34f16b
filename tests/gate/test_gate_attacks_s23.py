"""Attack review s23 of the gate (a hostile agent inside the sandbox), findings with tests.

1. A person's deny on an address did not catch a name resolving to it. Grants were matched
   against the `host:port` the agent wrote only: with a deny grant on 127.0.0.77 (or a CIDR
   holding it) and a yes for `db.corp.invalid` (a person's answer, or an allow grant for the
   name), the gate dialled 127.0.0.77 as soon as the name resolved there. Now a deny grant is
   matched against the name and every address the gate would dial (strictest wins), and a yes
   given before the lookup is checked against the grants with the addresses actually dialled.
2. An IPv4-mapped IPv6 address was shown as Python 3.11 writes it, `::ffff:7f00:9`: a person
   reading a card, a refusal or a record could not see it was 127.0.0.9 (or 8.8.8.8). It is
   now written `::ffff:127.0.0.9` everywhere the gate writes an address.

Only loopback addresses and names under .invalid; the harness's stand-in global address
(support.FAKE_GLOBAL) is routed to a local echo, never dialled.
"""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path
from typing import Any

import pytest

from console.daemon.evaluation import PolicyEvaluator, network_rules
from console.daemon.gate_wiring import GateWiring
from console.daemon.inbox import Inbox
from console.daemon.live_config import LiveConfig
from console.gate import NetAsk, NetworkRules, Verdict
from console.policy import GrantTable, new_grant

from .support import FAKE_GLOBAL, Echo, Harness, connect, running, through

WAIT = 10.0  # a bound on a hang, never a measurement
SECRET = ipaddress.ip_address("127.0.0.77")
MAPPED = ipaddress.ip_address("::ffff:127.0.0.9")


async def _record(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"id": 1}


def _wiring(tmp_path: Path, network: str) -> tuple[GateWiring, Inbox, GrantTable]:
    config = tmp_path / "config.toml"
    config.write_text('[profiles.demo]\ncommand = ["true"]\n[profiles.demo.network]\n'
                      + network)
    live = LiveConfig(config)
    grants = GrantTable()
    evaluator = PolicyEvaluator(live, grants)
    inbox = Inbox(_record, timeout_s=WAIT, grants=grants)
    return GateWiring(live, evaluator, inbox, None, None), inbox, grants  # type: ignore[arg-type]


def _wired(wiring: GateWiring, echo: Echo, names: dict[str, list[Any]],
           ask: Any = None) -> Harness:
    """A gate as the daemon wires it for run-1 of profile demo: its rules, its asker (or `ask`)
    and its veto over the grants, with `names` resolved by the harness and dials to `echo`."""
    profile = wiring.evaluator.profile("demo")
    return Harness(network_rules(profile), upstream_port=echo.port, names=names,
                   ask=ask or wiring.asker("run-1", profile), veto=wiring.veto("run-1", "demo"))


def _grant(grants: GrantTable, pattern: str, effect: str) -> None:
    grants.add(new_grant("network", pattern, effect, "run", run_id="run-1", profile="demo",
                         decided_by="alice"))


async def _answer_when_asked(inbox: Inbox, allow: bool) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not inbox.pending("run-1"):
        assert asyncio.get_running_loop().time() < deadline, "the gate never asked"
        await asyncio.sleep(0.01)
    (req,) = inbox.pending("run-1")
    await inbox.decide(req.id, allow, "alice")


# -- 1. a deny on an address catches a name resolving to it ------------------------------------

@pytest.mark.parametrize("shape", ["connect", "http"])
@pytest.mark.parametrize("yes", ["person", "grant"])
@pytest.mark.parametrize("deny", [str(FAKE_GLOBAL), "93.184.215.0/24",
                                  f"[::ffff:{FAKE_GLOBAL}]"])
async def test_a_deny_grant_on_an_address_refuses_a_name_allowed_before_its_lookup(
        tmp_path: Path, shape: str, yes: str, deny: str) -> None:
    """default = "ask", no address rule: the name is put to the person first and looked up only
    after the yes (docs/threat-model.md, "DNS only after a yes"); the deny grant on where it
    resolves must still refuse it."""
    wiring, inbox, grants = _wiring(tmp_path, 'default = "ask"\n')
    _grant(grants, deny, "deny")
    if yes == "grant":
        _grant(grants, "db.corp.invalid", "allow")
    echo = await Echo().start()
    h = _wired(wiring, echo, {"db.corp.invalid": [FAKE_GLOBAL]})
    try:
        async with running(h):
            attempt = asyncio.ensure_future(through(
                h, shape, "db.corp.invalid:443" if shape == "connect" else "db.corp.invalid"))
            if yes == "person":
                await _answer_when_asked(inbox, True)
            status, headers, body = await asyncio.wait_for(attempt, WAIT)
    finally:
        await echo.close()
    assert status == 403, f"deny {deny} let db.corp.invalid ({FAKE_GLOBAL}) through: {status}"
    assert not h.dialled
    assert str(FAKE_GLOBAL) not in body.decode()  # no DNS oracle: the sandbox is not told
    assert headers["x-pilothouse-decision"] == "deny; rule=address"
    (decision,) = h.kinds("net.decision")
    assert decision["action"] == "deny" and decision["addresses"] == [str(FAKE_GLOBAL)]
    assert decision["provenance"]["grant"]["rule_list"] == "deny"  # the record names the grant


@pytest.mark.parametrize("deny", [str(SECRET), "127.0.0.0/25"])
async def test_a_deny_grant_on_an_address_refuses_a_name_asked_with_its_addresses(
        tmp_path: Path, deny: str) -> None:
    """With an allow rule naming 127.0.0.0/8 the name is resolved first and asked with its
    addresses; an allow grant for the name must not outrank the deny grant on one of them."""
    wiring, inbox, grants = _wiring(tmp_path, 'default = "ask"\nallow = ["127.0.0.0/8"]\n')
    _grant(grants, deny, "deny")
    _grant(grants, "db.corp.invalid:443", "allow")
    asked: list[NetAsk] = []
    asker = wiring.asker("run-1", wiring.evaluator.profile("demo"))

    async def ask(q: NetAsk) -> Verdict:
        asked.append(q)
        return await asker(q)

    echo = await Echo().start()
    h = _wired(wiring, echo, {"db.corp.invalid": [SECRET, FAKE_GLOBAL]}, ask)
    try:
        async with running(h):
            status, _, body, _, writer = await connect(h, "db.corp.invalid:443")
            writer.close()
    finally:
        await echo.close()
    assert [q.addresses for q in asked] == [(str(SECRET), str(FAKE_GLOBAL))]  # what it dials
    assert status == 403 and not h.dialled, f"deny {deny} let {h.dialled} be dialled"
    assert str(SECRET) not in body.decode()
    assert not inbox.pending("run-1")


async def test_an_address_grant_still_leaves_other_names_alone(tmp_path: Path) -> None:
    """Contrast: the deny grant on one address does not refuse a name resolving elsewhere."""
    wiring, _, grants = _wiring(tmp_path, 'default = "ask"\nallow = ["127.0.0.0/8"]\n')
    _grant(grants, str(SECRET), "deny")
    _grant(grants, "ok.corp.invalid:443", "allow")
    echo = await Echo().start()
    h = _wired(wiring, echo, {"ok.corp.invalid": [ipaddress.ip_address("127.0.0.78"),
                                                  FAKE_GLOBAL]})
    try:
        async with running(h):
            status, _, _, _, writer = await connect(h, "ok.corp.invalid:443")
            writer.close()
    finally:
        await echo.close()
    assert status == 200 and h.dialled == [("127.0.0.78", 443)]


# -- 2. IPv4-mapped addresses as people read them ---------------------------------------------

async def test_a_mapped_address_is_shown_dotted_on_the_card_and_in_the_record() -> None:
    asked: list[NetAsk] = []

    async def ask(q: NetAsk) -> Verdict:
        asked.append(q)
        return Verdict(False, {"by": "alice"})  # never approved

    echo = await Echo().start()
    h = Harness(NetworkRules(allow=["127.0.0.0/8"], default="ask"), upstream_port=echo.port,
                names={"db.corp.invalid": [MAPPED, FAKE_GLOBAL]}, ask=ask)
    try:
        async with running(h):
            status, *_, writer = await connect(h, "db.corp.invalid:443")
            writer.close()
    finally:
        await echo.close()
    assert status == 403 and not h.dialled
    assert asked[0].addresses == ("::ffff:127.0.0.9", str(FAKE_GLOBAL)), asked[0].addresses
    (decision,) = h.kinds("net.decision")
    assert decision["addresses"][0] == "::ffff:127.0.0.9", decision


@pytest.mark.parametrize("written", ["[::ffff:127.0.0.9]", "[::FFFF:7f00:9]"])
async def test_a_mapped_literal_is_shown_dotted_in_the_refusal(written: str) -> None:
    h = Harness(NetworkRules(default="ask"), upstream_port=1)
    async with running(h):
        status, headers, body = await through(h, "connect", f"{written}:443")
    text = body.decode()
    assert status == 403 and not h.dialled
    assert "[::ffff:127.0.0.9]:443" in text and "7f00" not in text, text
    (decision,) = h.kinds("net.decision")
    assert decision["host"] == "::ffff:127.0.0.9" and decision["target"] == "[::ffff:127.0.0.9]:443"


@pytest.mark.parametrize("rule", ["127.0.0.9", "127.0.0.8/29"])
async def test_a_deny_on_the_ipv4_catches_its_mapped_form(rule: str) -> None:
    """Matching already treated ::ffff:a.b.c.d as a.b.c.d for deny; kept so."""
    echo = await Echo().start()
    h = Harness(NetworkRules(allow=["127.0.0.0/8", "[::ffff:127.0.0.0/104]"], deny=[rule],
                             default="allow"), upstream_port=echo.port)
    try:
        async with running(h):
            status, *_, writer = await connect(h, "[::ffff:127.0.0.9]:443")
            writer.close()
    finally:
        await echo.close()
    assert status == 403 and not h.dialled
