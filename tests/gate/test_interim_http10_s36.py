"""No 1xx answer reaches an HTTP/1.0 client through the gate (s36). An HTTP/1.0 client does not
know interim answers (RFC 9110 15.2: never sent to one): it reads a 103 Early Hints as the
answer and the real answer's bytes as the start of the next. Before, the gate passed every 1xx
on, and answered an HTTP/1.0 `Expect: 100-continue` with a 100 of its own."""

from __future__ import annotations

import socket

import pytest

from tests.gate.support import Harness, running
from tests.gate.test_gate_attacks_s12 import InterimFlood, OneRequestOrigin
from tests.gate.test_gate_http import policy, read_response

HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class HintingOrigin(OneRequestOrigin):
    """Answers a 103, then a 200."""

    def answer(self, conn: socket.socket) -> None:
        conn.sendall(HINTS + ANSWER)
        conn.recv(1)  # until the gate closes


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
async def test_interim_answers_reach_only_http11_clients(version: str) -> None:
    origin = HintingOrigin()
    h = Harness(policy(), upstream_port=origin.port)
    try:
        async with running(h):
            reader, writer = await h.open()
            writer.write(f"GET http://example.com/ {version}\r\nHost: example.com\r\n\r\n".encode())
            first, _, body = await read_response(reader)
            if version == "HTTP/1.1":
                assert first == 103  # an HTTP/1.1 client is given the hints, then the answer
                first, _, body = await read_response(reader)
            assert (first, body) == (200, b"ok"), f"an {version} client was sent a {first} first"
            writer.close()
    finally:
        origin.sock.close()


async def test_an_http10_expect_100_continue_gets_no_100() -> None:
    origin = HintingOrigin()
    h = Harness(policy(), upstream_port=origin.port)
    try:
        async with running(h):
            reader, writer = await h.open()
            writer.write(b"POST http://example.com/ HTTP/1.0\r\nHost: example.com\r\n"
                         b"Content-Length: 2\r\nExpect: 100-continue\r\n\r\nhi")
            status, _, _ = await read_response(reader)
            assert status == 200, f"an HTTP/1.0 client was sent a {status} first"
            writer.close()
    finally:
        origin.sock.close()


async def test_an_interim_flood_to_an_http10_client_ends_in_a_502_and_stalls_nothing() -> None:
    flood = InterimFlood(seconds=3.0)  # 102s for as long as the gate takes them
    h = Harness(policy(), upstream_port=flood.port)
    try:
        async with running(h):
            reader, writer = await h.open()
            writer.write(b"GET http://example.com/ HTTP/1.0\r\nHost: example.com\r\n\r\n")
            status, _, body = await read_response(reader)
            assert status == 502 and b"interim" in body, (status, body)
            writer.close()
    finally:
        flood.sock.close()
