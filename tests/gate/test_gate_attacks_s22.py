"""Attack review s22 of the gate (a hostile agent inside the sandbox), findings with tests.

1. A DNS oracle through a failed dial. docs/threat-model.md: "A 403 never says what a name
   resolved to (that would make the gate a DNS oracle into the local network)", and the 502 after
   a failed dial was meant to say only why (test_gate_no_dns_oracle.py). That test's dialler
   raised a bare "Connection refused"; the gate's real dialler (sockio.connect_stream) writes
   "connect to 10.1.2.77 port 5432: Connection refused", and asyncio's sock_connect "Connect call
   failed ('10.1.2.77', 5432)": the 502 handed the sandbox the address a name resolved to. With
   an allow rule naming a private range (the shared corpus's 10.1.2.0/24), an agent mapped the
   internal names behind it by asking for a closed port on each.

2. A deny rule written as a person writes an IDN (`пример.invalid`, not its punycode) made
   every refusal under it a dropped connection and a traceback in the daemon's log: the 403's
   `X-Pilothouse-Decision: deny; rule=...` header carried the rule's text, and a head is
   latin-1. The sandbox got no answer (why, what to do) and could fill the log, one traceback
   a request. The header now names the rule in its canonical (punycode) spelling; the body
   keeps it as written.
"""

from __future__ import annotations

import ipaddress

import pytest

from console.gate import NetworkRules

from .support import Harness, connect, free_port, read_response, running, through

SECRET = ipaddress.ip_address("127.0.0.77")  # where the name points: never told the sandbox


@pytest.mark.parametrize("shape", ["connect", "http"])
async def test_a_failed_real_dial_does_not_tell_the_sandbox_the_resolved_address(
        shape: str) -> None:
    port = free_port()  # nothing listens there: the real dial is refused by the kernel
    h = Harness(NetworkRules(allow=[f"127.0.0.0/8:{port}"], default="ask"), upstream_port=port,
                names={"db.corp.invalid": [SECRET]}, real_dial=True)
    async with running(h):
        status, _, body = await through(h, shape, f"db.corp.invalid:{port}")
    assert status == 502, body.decode()
    (error,) = h.kinds("net.error")
    assert str(SECRET) in error["error"]  # the person's record has it
    assert str(SECRET) not in body.decode(), body.decode()
    assert "Connection refused" in body.decode()  # still says why


async def test_a_failed_dial_to_an_address_still_says_it(
) -> None:
    """The agent wrote the address: the 502 may name it (nothing is revealed)."""
    port = free_port()
    h = Harness(NetworkRules(allow=[f"127.0.0.0/8:{port}"], default="ask"), upstream_port=port,
                real_dial=True)
    async with running(h):
        status, _, body, _, writer = await connect(h, f"{SECRET}:{port}")
        writer.close()
    assert status == 502 and str(SECRET) in body.decode(), body.decode()


@pytest.mark.parametrize("shape", ["connect", "http"])
async def test_a_deny_rule_written_in_unicode_is_answered_403_not_dropped(shape: str) -> None:
    h = Harness(NetworkRules(deny=["пример.invalid"], default="allow"), upstream_port=free_port())
    async with running(h):
        if shape == "connect":
            status, headers, body, _, writer = await connect(h, "xn--e1afmkfd.invalid:443")
        else:
            reader, writer = await h.open()
            writer.write("GET http://ПРИМЕР.invalid/ HTTP/1.1\r\n\r\n".encode())
            status, headers, body = await read_response(reader)
        writer.close()
    assert status == 403 and not h.dialled
    assert headers["x-pilothouse-decision"] == "deny; rule=xn--e1afmkfd.invalid"
    assert 'the deny rule "пример.invalid"' in body.decode()  # as the person wrote it
