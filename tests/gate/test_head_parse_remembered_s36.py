"""A short request head's parse is remembered (issue 17, s36): what each caller gets stays its
own, and a head refused once is refused again (a refusal is never remembered as a parse)."""

from __future__ import annotations

import pytest

from console.gate.http1 import HttpError, parse_request_line

CONNECT = [b"CONNECT api.example.invalid:443 HTTP/1.1", b"Host: api.example.invalid:443",
           b"User-Agent: agent/1"]


def test_each_caller_gets_its_own_head() -> None:
    first = parse_request_line(list(CONNECT))
    first.headers.append(("X-Added", "by the first caller"))
    first.headers[0] = ("Host", "elsewhere.invalid:443")
    second = parse_request_line(list(CONNECT))
    assert second.start == ("CONNECT", "api.example.invalid:443", "HTTP/1.1")
    assert second.headers == [("Host", "api.example.invalid:443"), ("User-Agent", "agent/1")]
    assert second is not first and second.headers is not first.headers


@pytest.mark.parametrize("lines", [
    [b"CONNECT api.example.invalid:443 HTTP/1.1 extra"],
    [b"CONNECT api.example.invalid:443 HTTP/1.1", b"Bad Header Line"],
    [b"GET\x00 / HTTP/1.1"],
])
def test_a_refused_head_is_refused_every_time(lines: list[bytes]) -> None:
    for _ in range(3):
        with pytest.raises(HttpError):
            parse_request_line(list(lines))


def test_a_long_head_parses_as_a_short_one_does() -> None:
    long = CONNECT + [f"X-Filler-{i}: {'v' * 40}".encode() for i in range(20)]
    head = parse_request_line(list(long))
    assert head.start[1] == "api.example.invalid:443" and len(head.headers) == 22
