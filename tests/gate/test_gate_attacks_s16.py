"""Attack review of the network gate, session 16: the fast paths and the HTTP/1.1 framing.
Each test asserts the secure behaviour through the real Gate over real sockets.

Nothing here leaves the machine: names are under .invalid, the harness resolves them to a
global address that exists nowhere and routes the checked address to a local server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

import pytest

from console.gate import http1
from tests.gate.support import Harness, running
from tests.gate.test_gate_attacks_s12_round2 import RawUpstream, policy

# -- 1. the trailer section of a chunked body holds the event loop -------------------------
#
# Review s12 round 2 made http1.relay_chunked give the loop a turn every 64 chunks, because
# one 256 KiB read holds tens of thousands of tiny chunks. The trailer section after the
# last chunk (`0\r\n`, then field lines up to an empty line) is read by the same function
# in a loop of its own, with neither a turn nor a bound: each line is read, found non-empty
# and dropped. A client that sends `0\r\n` and then `a\n` without end (two bytes a line, no
# chunk, nothing forwarded upstream, nothing that waits) keeps one connection's handler
# running while SockStream's turn every 16 reads lets 4 MiB, two million lines, through
# between turns. Measured (/tmp probe, 3 s of such lines to an allowed host): the worst gap
# between two turns of the loop was 3.4 s, the whole attack; the same connection sending a
# body of 32 KiB chunks: 21 ms. The same loop reads an upstream's answer trailers.


def _trailer_flood_client(path: str, lines: int, answer: list[bytes]) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(path)
        with contextlib.suppress(OSError):
            s.sendall(b"POST http://ok.invalid/upload HTTP/1.1\r\nHost: ok.invalid\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n" + b"a\n" * lines
                      + b"\r\n")
        with contextlib.suppress(OSError):
            answer.append(s.recv(200))


def _read_body_then_answer(up: RawUpstream, conn: socket.socket) -> None:
    tail = b""
    with contextlib.suppress(OSError):
        while data := conn.recv(1 << 20):
            up.received += data
            tail = (tail + data)[-16:]
            if tail.endswith(b"\r\n0\r\n\r\n"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                return


async def test_a_chunked_bodys_trailer_lines_do_not_hold_the_loop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Counted, not timed: how many framing lines the gate reads between two turns of the
    # loop (a callback that re-queues itself once per turn resets the count).
    count = {"now": 0, "worst": 0}
    original = http1._chunk_line

    async def counted(reader):  # type: ignore[no-untyped-def]
        count["now"] += 1
        count["worst"] = max(count["worst"], count["now"])
        return await original(reader)

    monkeypatch.setattr(http1, "_chunk_line", counted)
    loop = asyncio.get_running_loop()
    ticking = True

    def tick() -> None:
        count["now"] = 0
        if ticking:
            loop.call_soon(tick)

    up = RawUpstream(_read_body_then_answer)
    h = Harness(policy(), upstream_port=up.port)
    answer: list[bytes] = []
    async with running(h):
        loop.call_soon(tick)
        client = threading.Thread(target=_trailer_flood_client,
                                  args=(h.path, 300_000, answer), daemon=True)
        client.start()
        await asyncio.to_thread(client.join, 30)
        ticking = False
    up.close()
    assert not client.is_alive(), "the gate never ended the request"
    assert count["worst"] <= 1_000, (
        f"the gate read {count['worst']} framing lines of one request body without giving "
        "the event loop a turn: a chunked body's trailer section is neither bounded nor "
        "paced, so one client holds every other connection of the daemon")
