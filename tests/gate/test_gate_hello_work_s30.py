"""Review s30 (helper 102): the work a tunnel's first bytes cost the daemon's loop.

HelloCheck promised that a trickled hello is not parsed per byte. That held for the first
hello only: one behind others, or a record behind an accepted hello, left `want` at 0, so every
byte re-read the whole buffer (up to 80 KB: 1,600 tiny hellos parsed again, each on fresh copies
of the rest). A few hundred bytes a second from one run's tunnels held the loop for seconds
(operator `hello` 1 ms -> 3 s). Now what was read is not read again, and a third ClientHello in
a row is refused: no client sends more than its hello and the one a retry request asks for.

The work is counted, not timed: hellos parsed, and lines of tls.py run, per byte fed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

import console.gate.tls as tls
from tests.gate.support import Harness, client_hello, running
from tests.gate.test_gate_attacks_s12_round2 import PATHS, RawUpstream, policy
from tests.gate.test_gate_attacks_s12_round3 import _ended, _quiet, _tunnel


def tiny_hello() -> bytes:
    """The smallest ClientHello the parser accepts: no SNI, no extensions."""
    body = b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\x00\x00" + b"\x00"
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs


# A hello's head that says 16,000 bytes follow: the check waits for them.
BIG_HEAD = b"\x16\x03\x01" + (16000).to_bytes(2, "big") + b"\x01" + (15996).to_bytes(3, "big")
EMPTY_APPDATA = b"\x17\x03\x03\x00\x00"


@contextmanager
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """A counter of parse_client_hello calls while the block runs."""
    count = [0]
    real = tls.parse_client_hello

    def counting(buf: bytes) -> tls.HelloResult:
        count[0] += 1
        return real(buf)

    monkeypatch.setattr(tls, "parse_client_hello", counting)
    yield count


def lines_run(fn: Callable[[], None]) -> int:
    """Lines of console/gate/tls.py executed while fn runs."""
    count = 0

    def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
        nonlocal count
        if frame.f_code.co_filename != tls.__file__:
            return None
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


def test_a_hello_behind_another_is_not_parsed_per_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    check = tls.HelloCheck.naming("ok.invalid")
    assert not check.feed(client_hello("ok.invalid") + BIG_HEAD)
    with parses(monkeypatch) as count:
        for _ in range(200):
            assert not check.feed(b"\x00")
    assert count[0] <= 1, f"{count[0]} hello parses for 200 one-byte feeds"


def test_a_third_hello_in_a_row_is_refused() -> None:
    check = tls.HelloCheck.naming("ok.invalid")
    assert check.feed(tiny_hello() * 1600 + BIG_HEAD)
    assert check.refused and check.hello is not None and "ClientHellos" in check.hello.detail
    two = tls.HelloCheck.naming("ok.invalid")  # a hello and the one a retry asks for, at once
    assert two.feed(client_hello("ok.invalid") + client_hello("ok.invalid"))
    assert not two.refused


def test_records_behind_a_hello_are_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each record completed by its own feed: the lines run grow with the records, not with
    their square (2,000 records read again at every feed were about 4 million lines). Since
    review h157 the check refuses past MAX_OTHER_RECORDS of them, so both runs stop there."""
    def feed_records(n: int) -> Callable[[], None]:
        check = tls.HelloCheck.naming("ok.invalid")
        assert not check.feed(client_hello("ok.invalid") + b"\x17\x03\x03\x00\x01")

        def go() -> None:
            for i in range(n):
                if check.feed(b"x" + b"\x17\x03\x03\x00\x01"):
                    assert check.refused and i >= tls.MAX_OTHER_RECORDS - 1
                    return
        return go

    small, large = lines_run(feed_records(200)), lines_run(feed_records(2000))
    assert large <= 12 * small, (small, large)  # linear: 10x the records, about 10x the lines


@pytest.mark.parametrize("harness", PATHS)
async def test_a_tunnel_sending_hello_after_hello_is_ended(harness: type[Harness]) -> None:
    up = RawUpstream(_quiet)
    h = harness(policy(), upstream_port=up.port)
    loop = asyncio.get_running_loop()
    async with running(h):
        s = await _tunnel(h)
        await loop.sock_sendall(s, tiny_hello() * 1600 + BIG_HEAD)
        ended = await _ended(s, 10)
        s.close()
        up.close()
    assert ended, "the gate kept a tunnel open that sent 1,600 ClientHellos in a row"
    assert not bytes(up.received), "bytes of a refused tunnel reached the upstream"
