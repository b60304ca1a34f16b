"""Review h176: one client connection, several requests, through a real gate socket to a raw
upstream on 127.0.0.1, read by http.client (a parser independent of the gate's).

The upstream connection a client connection keeps between its requests to the same target
was sent the next request without a look at what it still held: an answer the gate frames as
bodiless (to a HEAD, a 204, a 304) that came with a body anyway, or bytes past an answer's
Content-Length, were left unread, and the client's next request was answered with them (a
whole forged answer, here a 200). The parking
path already refused such a connection (upstreams.py: `settled`, `peer_quiet`); the kept one
now is looked at the same way, and a fresh connection to the checked address serves instead.
"""

from __future__ import annotations

import asyncio

import pytest

from console.gate import NetworkRules

from .support import Harness, running
from .test_gate_http import UnixHTTPConnection

FORGED = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"


class RawOrigin:
    """An upstream that answers each request head with what `first` says for the first request
    on a connection (one write: head and the bytes behind it), `resp` for the others."""

    def __init__(self, first: bytes) -> None:
        self.first = first
        self.connections: list[bytearray] = []

    async def start(self) -> RawOrigin:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen = bytearray()
        self.connections.append(seen)
        answered = 0
        try:
            while data := await reader.read(65536):
                seen += data
                while answered < seen.count(b"\r\n\r\n"):
                    answered += 1
                    writer.write(self.first if answered == 1 and len(self.connections) == 1
                                 else b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal")
                    await writer.drain()
        except ConnectionError:
            pass
        writer.close()


@pytest.mark.parametrize(("method", "first"), [
    ("GET", b"HTTP/1.1 304 Not Modified\r\n\r\n" + FORGED),
    ("GET", b"HTTP/1.1 204 No Content\r\n\r\n" + FORGED),
    ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n" + FORGED),
    ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + FORGED),  # past its length
], ids=["304", "204", "HEAD", "past-length"])
async def test_an_unframed_body_is_never_the_next_answer(method: str, first: bytes) -> None:
    origin = await RawOrigin(first).start()
    h = Harness(NetworkRules(allow=["a.invalid"], default="deny", ports=[80]),
                upstream_port=origin.port)

    answers = await _on_one_connection(h, origin, [(method, "/one"), ("GET", "/two")])
    assert answers[1] == (200, b"real"), answers  # before: (200, b"forged")
    # The second request went on a fresh connection, after its own decision, to the address
    # that decision checked; the first connection ended unread.
    assert [bytes(c).count(b" HTTP/1.1\r\n") for c in origin.connections] == [1, 1]
    assert b"GET /two " in origin.connections[1]
    assert len(h.kinds("net.decision")) == 2 and len(h.dialled) == 2
    assert h.kinds("net.closed")[0]["how"] == "error"


async def _on_one_connection(h: Harness, origin: RawOrigin,
                             requests: list[tuple[str, str]]) -> list[tuple[int, bytes]]:
    """(status, body) of each request, sent in turn on one client connection through the gate."""
    def client() -> list[tuple[int, bytes]]:
        conn = UnixHTTPConnection(h.path)
        out = []
        for method, path in requests:
            conn.request(method, f"http://a.invalid{path}")
            resp = conn.getresponse()
            out.append((resp.status, resp.read()))
        conn.close()
        return out

    try:
        async with running(h):
            return await asyncio.to_thread(client)
    finally:
        origin.server.close()


async def test_a_clean_kept_upstream_is_still_reused() -> None:
    origin = await RawOrigin(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal").start()
    h = Harness(NetworkRules(allow=["a.invalid"], default="deny", ports=[80]),
                upstream_port=origin.port)

    answers = await _on_one_connection(h, origin, [("GET", p) for p in ("/one", "/two", "/three")])
    assert answers == [(200, b"real")] * 3
    assert len(origin.connections) == 1 and len(h.dialled) == 1



@pytest.mark.parametrize("byte", [b for b in range(256) if b < 0x20 or b == 0x7F])
def test_a_header_value_holds_no_control_but_tab(byte: int) -> None:
    """RFC 9110 5.5: a field value is VCHAR, obs-text, SP and HTAB. \\x0b, \\x0c and ESC were
    passed on as written (h176's leftover)."""
    from console.gate import http1

    head = [b"GET http://a.invalid/ HTTP/1.1", b"X-Probe: a" + bytes([byte]) + b"b"]
    if byte == 0x09:
        assert http1.parse_request_line(head).get("X-Probe") == "a\tb"
        return
    with pytest.raises(http1.HttpError) as refused:
        http1.parse_request_line(head)
    assert refused.value.status == 400


def test_a_header_value_of_visible_and_obs_text_bytes_passes() -> None:
    from console.gate import http1

    value = bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))
    head = [b"GET http://a.invalid/ HTTP/1.1", b"X-Probe: " + value.strip(b" ")]
    assert http1.parse_request_line(head).get("X-Probe") == value.strip(b" ").decode("latin-1")
