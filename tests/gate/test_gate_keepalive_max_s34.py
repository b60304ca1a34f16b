"""A server's `Keep-Alive: max=N` is honoured (s33's leftover): a connection that has served
what its server said it takes is neither reused nor parked, so a request never goes to a
server about to drop it. Before, the gate went by `timeout=` only: such a server dropped the
next request unanswered; a GET was then sent a second time, and a POST (never sent twice)
was answered 502. A real upstream server on 127.0.0.1 that drops the request past its max,
the gate on a unix socket."""

from __future__ import annotations

import asyncio

import pytest

from console.gate.forward import keep_alive_params
from console.gate.http1 import parse_status_line

from .support import Harness, running
from .test_gate_upstream_parking import BODY, request, rules, until


class CountingServer:
    """Answers `Keep-Alive: timeout=5, max=<most>` and drops, unanswered, a request past
    `most` on one connection (how a server at its max behaves when it does not say close)."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> CountingServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head.split(b"\r\n", 1)[0])
                for h in head.split(b"\r\n")[1:]:
                    if h.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(h.split(b":")[1]))
                if served == self.most:
                    break  # past its max: dropped, unanswered
                served += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                             b"Keep-Alive: timeout=5, max=%d\r\n\r\n" % (len(BODY), self.most)
                             + BODY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_a_connection_at_its_servers_max_is_not_sent_another_request(method: str) -> None:
    up = await CountingServer(most=2).start()
    h = Harness(rules(), upstream_port=up.port)
    body = b"x=1" if method == "POST" else b""
    async with running(h):
        for n in range(3):
            got = await request(h, method=method, body=body, path=f"/{n}")
            assert got == (200, BODY), (n, got, up.requests)
            await until(lambda: h.gate.parked <= 1)
    await up.close()
    assert len(up.requests) == 3, f"a request was sent twice: {up.requests}"
    assert up.connections == 2, up.connections


def _said(*values: str) -> tuple[float | None, int | None]:
    head = [b"HTTP/1.1 200 OK", *(b"Keep-Alive: " + v.encode() for v in values)]
    return keep_alive_params(parse_status_line(head))


def test_keep_alive_parameters_are_read_strictly() -> None:
    assert _said("timeout=5, max=100") == (5.0, 100)
    assert _said("max=3") == (None, 3)
    assert _said("timeout=9", "timeout=2, max=7", "max=4") == (2.0, 4)  # said twice: shorter
    assert _said("timeout=-1, max=x", "max=99999999999") == (None, None)
    assert _said("Timeout = 5 , MAX = 2") == (5.0, 2)
    assert _said() == (None, None)
