"""Every case of the shared network corpus, through three paths: the pure decision, a real
CONNECT to a Gate on a unix socket, and absolute-form HTTP for URL cases.

An "allow" must reach a real server (through the dial hook, which records the address the gate
checked); a "deny" is a 403 with the decision header and no dial; a "reject" is a 400 with no
decision and no dial; an "ask" puts exactly one question to the inbox, whose "no" then denies.
"""

from __future__ import annotations

import tomllib

import pytest

from console.gate import (
    BadTarget,
    NetAsk,
    NetworkRules,
    Verdict,
    parse_absolute_url,
    parse_connect_target,
    system_resolver,
)

from .support import CORPUS, FAKE_GLOBAL, Echo, Harness, Origin, connect, read_response, running

if not CORPUS.exists():  # pragma: no cover - the corpus lives beside the repo
    pytest.skip(f"network corpus not found at {CORPUS}", allow_module_level=True)

DATA = tomllib.loads(CORPUS.read_text())
POLICY = DATA["policy"]
CASES = DATA["case"]
CONNECT_CASES = [c for c in CASES if "connect" in c]
URL_CASES = [c for c in CASES if "url" in c]


def rules() -> NetworkRules:
    return NetworkRules(POLICY["allow"], POLICY["deny"], POLICY["default"], POLICY["ports"])


def case_id(case: dict) -> str:
    return (case.get("connect") or case.get("url")).encode("unicode_escape").decode()


def expected(case: dict) -> set[str]:
    return set(case["expect"].split("|"))


def test_corpus_is_covered() -> None:
    assert len(CONNECT_CASES) + len(URL_CASES) == len(CASES) and CASES


@pytest.mark.parametrize("case", CASES, ids=case_id)
async def test_pure_decision(case: dict) -> None:
    try:
        if "connect" in case:
            target = parse_connect_target(case["connect"])
        else:
            target, _ = parse_absolute_url(case["url"])
    except BadTarget:
        assert "reject" in expected(case), case["why"]
        return
    if target.ip is not None:
        addresses = [target.ip]
    elif case.get("resolve"):
        addresses = await system_resolver(target.host, target.port)
    else:
        addresses = None
    got = rules().decide(target.host, target.port, addresses)
    assert got.action in expected(case), f"{case['why']}: got {got}"
    if addresses is None and got.action != "deny":
        # After resolution to a global address the answer must not change.
        assert rules().decide(target.host, target.port, [FAKE_GLOBAL]).action == got.action


class Inbox:
    """Counts questions and answers no, so an "ask" is visible and then denied."""

    def __init__(self, allow: bool = False) -> None:
        self.questions: list[NetAsk] = []
        self.allow = allow

    async def __call__(self, q: NetAsk) -> Verdict:
        self.questions.append(q)
        return Verdict(self.allow, {"by": "test-inbox"})


def check_outcome(case: dict, h: Harness, inbox: Inbox, status: int, headers: dict,
                  body: bytes) -> None:
    want = expected(case)
    decisions = h.kinds("net.decision")
    if status == 400:
        assert "reject" in want, f"{case['why']}: rejected {body!r}"
        assert not decisions and not h.dialled and not h.resolved
        assert h.kinds("net.rejected")
        return
    assert status in (200, 403), body
    if "ask" in want:
        assert len(inbox.questions) == 1, case["why"]
        assert status == 403 and headers["x-pilothouse-decision"] == "deny; rule=asked"
        assert decisions[-1]["asked"] and decisions[-1]["provenance"] == {"by": "test-inbox"}
        assert not h.dialled
        return
    assert not inbox.questions, f"{case['why']}: asked when the rules should have answered"
    if "allow" in want:
        assert status == 200, f"{case['why']}: {status} {body!r}"
        assert decisions[-1]["action"] == "allow"
        assert h.dialled == [(decisions[-1]["address"], decisions[-1]["port"])]
        return
    assert "deny" in want and status == 403, f"{case['why']}: {status}"
    assert headers["x-pilothouse-decision"].startswith("deny; rule=")
    assert decisions[-1]["action"] == "deny"
    assert b"To allow it:" in body
    assert not h.dialled
    if decisions[-1]["basis"] == "rule":
        assert not h.resolved, "a name denied by a rule must never be looked up"


@pytest.mark.parametrize("case", CONNECT_CASES, ids=case_id)
async def test_connect(case: dict) -> None:
    echo = await Echo().start()
    inbox = Inbox()
    h = Harness(rules(), upstream_port=echo.port, ask=inbox,
                system_resolve=bool(case.get("resolve")))
    async with running(h):
        status, headers, body, reader, writer = await connect(h, case["connect"])
        check_outcome(case, h, inbox, status, headers, body)
        if status == 200:
            writer.write(b"hello through the tunnel")
            await writer.drain()
            assert await reader.readexactly(24) == b"hello through the tunnel"
        writer.close()
    await echo.close()


@pytest.mark.parametrize("case", URL_CASES, ids=case_id)
async def test_absolute_form(case: dict) -> None:
    origin = Origin()
    inbox = Inbox()
    h = Harness(rules(), upstream_port=origin.port, ask=inbox)
    try:
        async with running(h):
            reader, writer = await h.open()
            writer.write(f"GET {case['url']} HTTP/1.1\r\nHost: example.com\r\n\r\n".encode())
            status, headers, body = await read_response(reader)
            check_outcome(case, h, inbox, status, headers, body)
            if status == 200:
                target, path = parse_absolute_url(case["url"])
                seen = origin.requests[-1]
                assert seen["path"] == path
                assert dict(seen["headers"])["Host"] == target.host
            writer.close()
    finally:
        origin.close()


async def test_ask_then_allow_dials() -> None:
    """The ask cases, answered yes, reach the server."""
    echo = await Echo().start()
    inbox = Inbox(allow=True)
    h = Harness(rules(), upstream_port=echo.port, ask=inbox)
    async with running(h):
        for case in (c for c in CONNECT_CASES if c["expect"] == "ask"):
            status, _, _, _, writer = await connect(h, case["connect"])
            assert status == 200
            writer.close()
        asked = [c for c in CONNECT_CASES if c["expect"] == "ask"]
        assert len(inbox.questions) == len(asked) == len(h.dialled)
    await echo.close()
