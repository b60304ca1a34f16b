"""Review s20 (gate): the "first request" a person is asked about names what the gate sends.

docs/threat-model.md: "a network request is asked, shown and granted as the host the gate
would connect to (`pаypal.com` with a Cyrillic а is asked as `xn--pypal-4ve.com:443`)". The
question's destination was, but its request line (NetAsk.target: the card's "first request"
row, and the recorded decision's `target`) was the agent's text as written: `CONNECT
pаypal.invalid:443` with the Cyrillic letter unmarked (a network card has no "not ASCII" row,
its subject being punycode), or `GET http://paypal.invalid@evil.invalid/login`, whose userinfo
the gate drops and whose first host it never connects to. The person read a paypal request
line next to a destination they had to decode. Now the question and the record carry the
request line the gate sends: the normalised host (punycode, lower case), the port, the path and
query it forwards; no userinfo, no fragment.
"""

from __future__ import annotations

from console.gate import NetAsk, NetworkRules, Verdict

from .support import Echo, Harness, Origin, connect, read_response, running

HOMOGRAPH = "p\u0430ypal.invalid"  # a Cyrillic а
PUNYCODE = "xn--pypal-4ve.invalid"


def _person(questions: list[NetAsk]):  # type: ignore[no-untyped-def]
    async def person(q: NetAsk) -> Verdict:
        questions.append(q)
        return Verdict(True, {"by": "alice", "grant": "once"})
    return person


async def test_a_tunnel_to_a_homograph_is_asked_as_the_host_it_connects_to() -> None:
    echo = await Echo().start()
    questions: list[NetAsk] = []
    h = Harness(NetworkRules(default="ask", ports=[80, 443]), upstream_port=echo.port,
                ask=_person(questions))
    try:
        async with running(h):
            status, *_, writer = await connect(h, f"{HOMOGRAPH}:443".encode())
            writer.close()
    finally:
        await echo.close()
    assert status == 200
    (q,) = questions
    assert q.host == PUNYCODE
    assert q.target.isascii() and q.target == f"{PUNYCODE}:443", q.target
    assert h.kinds("net.decision")[0]["target"] == f"{PUNYCODE}:443"


async def test_a_url_is_asked_as_the_request_line_the_gate_sends() -> None:
    origin = Origin()
    questions: list[NetAsk] = []
    h = Harness(NetworkRules(default="ask", ports=[80, 443]), upstream_port=origin.port,
                ask=_person(questions))
    url = f"http://paypal.invalid:80@{HOMOGRAPH.upper()}./login?next=1#top"
    try:
        async with running(h):
            reader, writer = await h.open()
            writer.write(f"GET {url} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            assert (await read_response(reader))[0] == 200
            writer.close()
    finally:
        origin.close()
    (sent,) = origin.requests
    assert sent["path"] == "/login?next=1"
    assert dict(sent["headers"])["Host"] == PUNYCODE
    (q,) = questions
    assert q.target == f"http://{PUNYCODE}/login?next=1", q.target
    assert "paypal.invalid" not in q.target  # the userinfo's host: never connected to
    assert h.kinds("net.decision")[0]["target"] == f"http://{PUNYCODE}/login?next=1"


async def test_a_request_line_written_canonically_is_asked_as_written() -> None:
    origin = Origin()
    questions: list[NetAsk] = []
    h = Harness(NetworkRules(default="ask", ports=[80, 443]), upstream_port=origin.port,
                ask=_person(questions))
    url = "http://api.invalid:8080/v1/models?x=%41"
    try:
        async with running(h):
            reader, writer = await h.open()
            writer.write(f"GET {url} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            assert (await read_response(reader))[0] in (200, 403)
            writer.close()
    finally:
        origin.close()
    assert [q.target for q in questions] == [url]
