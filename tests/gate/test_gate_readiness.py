"""The tunnels' own epoll (console.gate.readiness): callbacks as the loop's add_reader and
add_writer give them, and a spliced tunnel that leaves nothing watched behind."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from console.gate import NetworkRules
from console.gate.readiness import Readiness
from console.gate.splice import Activity, SplicedTunnel

from .support import Echo, Harness, echo_tunnels, running


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_reader_is_called_while_there_is_something_to_read(pair) -> None:
    a, b = pair
    readiness = Readiness()
    calls: list[bytes] = []
    readiness.add_reader(a.fileno(), lambda: calls.append(a.recv(1)))
    await turns()
    assert calls == []
    b.send(b"xy")
    await turns(6)
    assert calls == [b"x", b"y"]  # level-triggered: what is left is reported again
    readiness.remove_reader(a.fileno())
    b.send(b"z")
    await turns()
    assert calls == [b"x", b"y"]
    assert readiness.watching() == 0
    readiness.close()


async def test_reader_and_writer_of_one_descriptor_are_separate(pair) -> None:
    a, _ = pair
    readiness = Readiness()
    seen: list[str] = []
    readiness.add_reader(a.fileno(), lambda: seen.append("read"))
    readiness.add_writer(a.fileno(), lambda: seen.append("write"))
    await turns()
    assert set(seen) == {"write"}  # writable, nothing to read
    readiness.remove_writer(a.fileno())
    seen.clear()
    await turns()
    assert seen == []
    assert readiness.watching() == 1  # the reader stays
    readiness.remove_reader(a.fileno())
    assert readiness.watching() == 0
    readiness.close()


async def test_a_failing_callback_is_reported_and_the_others_still_run(pair) -> None:
    a, b = pair
    c, d = socket.socketpair()
    c.setblocking(False)
    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    readiness = Readiness()
    ran: list[str] = []

    def broken() -> None:
        a.recv(10)
        raise RuntimeError("broken tunnel")

    readiness.add_reader(a.fileno(), broken)
    readiness.add_reader(c.fileno(), lambda: ran.append(c.recv(10).decode()))
    b.send(b"1")
    d.send(b"2")
    await turns()
    assert ran == ["2"]
    assert [str(r["exception"]) for r in reported] == ["broken tunnel"]
    readiness.close()
    loop.set_exception_handler(None)
    c.close()
    d.close()


async def test_a_callback_may_remove_another_that_was_ready_too(pair) -> None:
    a, b = pair
    c, d = socket.socketpair()
    c.setblocking(False)
    readiness = Readiness()
    ran: list[str] = []

    def first(fd: int, other: int, name: str) -> None:
        ran.append(name)
        readiness.remove_reader(fd)
        readiness.remove_reader(other)

    readiness.add_reader(a.fileno(), lambda: first(a.fileno(), c.fileno(), "a"))
    readiness.add_reader(c.fileno(), lambda: first(c.fileno(), a.fileno(), "c"))
    b.send(b"1")
    d.send(b"2")
    await turns()
    assert len(ran) == 1  # whichever ran first stopped the other
    assert readiness.watching() == 0
    readiness.close()
    c.close()
    d.close()


async def test_watching_a_closed_descriptor_fails_and_leaves_nothing_behind() -> None:
    readiness = Readiness()
    a, b = socket.socketpair()
    fd = a.fileno()
    a.close()
    b.close()
    with pytest.raises(OSError):
        readiness.add_reader(fd, lambda: None)
    assert readiness.watching() == 0
    readiness.close()
    readiness.close()  # twice is harmless


async def test_a_spliced_tunnel_leaves_nothing_watched(pair) -> None:
    client, client_far = pair
    upstream, upstream_far = socket.socketpair()
    upstream.setblocking(False)
    readiness = Readiness()
    tunnel = SplicedTunnel(client, upstream, Activity(), readiness)
    tunnel.start_down()
    tunnel.start_up()
    assert readiness.watching() == 2
    client_far.sendall(b"ping")
    await turns()
    upstream_far.settimeout(5)
    assert upstream_far.recv(10) == b"ping"
    upstream_far.sendall(b"pong")
    await turns()
    client_far.settimeout(5)
    assert client_far.recv(10) == b"pong"
    client_far.shutdown(socket.SHUT_WR)
    upstream_far.shutdown(socket.SHUT_WR)
    assert await asyncio.wait_for(tunnel.wait(), 5) == "closed"
    tunnel.stop()
    assert readiness.watching() == 0
    readiness.close()
    upstream.close()
    upstream_far.close()


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def test_a_closed_gate_leaves_no_descriptor_of_its_tunnels_behind() -> None:
    echo = await Echo().start()
    h = Harness(NetworkRules(allow=["example.com"], default="deny", ports=[443]),
                upstream_port=echo.port)
    before = _open_fds()
    async with running(h):
        await echo_tunnels(h)
    await asyncio.sleep(0.05)
    left = _open_fds() - before
    await echo.close()
    assert not left, f"descriptors left open: {[os.readlink(f'/proc/self/fd/{fd}') for fd in left]}"


async def test_more_descriptors_ready_than_one_batch_are_all_served() -> None:
    """300 ready at once: the first wake-up takes 256 (readiness._BATCH), the epoll stays
    readable, and the loop's next turn serves the rest."""
    readiness = Readiness()
    pairs = [socket.socketpair() for _ in range(300)]
    served: list[int] = []

    def serve(i: int, sock: socket.socket) -> None:
        served.append(i)
        sock.recv(10)
        readiness.remove_reader(sock.fileno())

    for i, (near, far) in enumerate(pairs):
        near.setblocking(False)
        readiness.add_reader(near.fileno(), lambda i=i, near=near: serve(i, near))
        far.send(b"!")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    first = len(served)
    for _ in range(10):
        await asyncio.sleep(0)
    assert first <= 256 and sorted(served) == list(range(300))
    assert readiness.watching() == 0
    readiness.close()
    for near, far in pairs:
        near.close()
        far.close()


async def test_a_callback_that_closes_and_reuses_a_ready_descriptor_in_the_same_batch() -> None:
    """A's callback stops B, closes it and watches a new socket that got B's number, all
    while B's event is in the same batch: the new callback may be woken with nothing to
    read, and must then get its own data, once."""
    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    readiness = Readiness()
    a, a_far = socket.socketpair()
    b, b_far = socket.socketpair()
    for s in (a, b):
        s.setblocking(False)
    b_number = b.fileno()
    got: list[bytes] = []
    made: list[socket.socket] = []

    def new_reader(sock: socket.socket) -> None:
        try:
            got.append(sock.recv(100))
        except BlockingIOError:
            got.append(b"(nothing)")

    def on_a() -> None:
        a.recv(100)
        readiness.remove_reader(a.fileno())
        readiness.remove_reader(b_number)
        b.close()
        c, c_far = socket.socketpair()
        c.setblocking(False)
        made.extend((c, c_far))
        assert c.fileno() == b_number  # the lowest free number: B's
        readiness.add_reader(c.fileno(), lambda: new_reader(c))

    readiness.add_reader(a.fileno(), on_a)
    readiness.add_reader(b_number, lambda: got.append(b"old B's callback"))
    a_far.send(b"a")
    b_far.send(b"b")
    for _ in range(5):
        await asyncio.sleep(0)
    assert b"old B's callback" not in got
    made[1].send(b"c")
    for _ in range(5):
        await asyncio.sleep(0)
    assert [g for g in got if g != b"(nothing)"] == [b"c"]
    readiness.remove_reader(made[0].fileno())
    assert readiness.watching() == 0
    readiness.close()
    for s in (a, a_far, b_far, *made):
        s.close()
    loop.set_exception_handler(None)
    assert reported == []
