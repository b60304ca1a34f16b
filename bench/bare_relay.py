"""A bare CONNECT (and GET) relay on asyncio's loop callbacks, for bench/gate.py: what Python itself
costs per tunnel on this machine, beside the gate and tinyproxy.

It decides nothing, records nothing and checks nothing (no rules, no ClientHello, no limits,
no idle watch, no byte counts): it reads one head, dials the authority it names, answers 200
(CONNECT) or sends the head on in origin form (GET http://host:port/path: the answer is never
parsed) and copies bytes both ways until both sides have closed. Never a proxy to run: the benchmark
points it at its own loopback upstream only.

    python bench/bare_relay.py SOCKET_PATH     (prints "ready" once listening)
    python bench/bare_relay.py tcp             (127.0.0.1, a free port: prints "ready PORT")
    python bench/bare_relay.py splice          (the same, a tunnel's bytes moved by splice(2))

`splice` is the anchor for a tunnel's download: after the CONNECT each direction is a thread
of its own, blocked in splice(2) through a 1 MiB pipe, with no event loop, no readiness wait
and no check: the most any relay in Python gets from this kernel for two loopback hops.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import sys
import threading


class BareRelay:
    def __init__(self, path: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.tcp = path == "tcp"  # as the gate is reached inside a sandbox: 127.0.0.1:3128
        self.listener = socket.socket(socket.AF_INET if self.tcp else socket.AF_UNIX,
                                      socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0) if self.tcp else path)
        self.listener.listen(socket.SOMAXCONN)
        self.listener.setblocking(False)

    def run(self) -> None:
        self.loop.add_reader(self.listener.fileno(), self._accept)
        port = f" {self.listener.getsockname()[1]}" if self.tcp else ""
        print(f"ready{port}", flush=True)
        self.loop.run_forever()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except BlockingIOError:
                return
            client.setblocking(False)
            if self.tcp:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.loop.add_reader(client.fileno(), self._head, client)

    def _head(self, client: socket.socket) -> None:
        self.loop.remove_reader(client.fileno())
        data = client.recv(4096)  # one head, whole in one read on loopback
        if not data:
            client.close()
            return
        method, target, rest = data.split(b" ", 2)
        request = b""  # CONNECT: nothing to send on; GET http://host:port/path: the head, origin-form
        if method != b"CONNECT":
            target, slash, path = target[len(b"http://"):].partition(b"/")
            request = b" ".join((method, slash + path, rest))
        host, _, port = target.decode().rpartition(":")
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        upstream.connect_ex((host, int(port)))
        self.loop.add_writer(upstream.fileno(), self._dialled, client, upstream, request)

    def _dialled(self, client: socket.socket, upstream: socket.socket, request: bytes) -> None:
        self.loop.remove_writer(upstream.fileno())
        if upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            client.close()
            upstream.close()
            return
        if request:  # a GET: its head goes up, and the answer comes back as bytes, unread
            upstream.send(request)
        else:
            client.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
        open_directions = [2]
        self.loop.add_reader(client.fileno(), self._copy, client, upstream, open_directions)
        self.loop.add_reader(upstream.fileno(), self._copy, upstream, client, open_directions)

    def _copy(self, src: socket.socket, dst: socket.socket, open_directions: list[int]) -> None:
        try:
            data = src.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            try:
                dst.send(data)  # short exchanges only: what the kernel does not take is dropped
            except OSError:
                pass
            return
        self.loop.remove_reader(src.fileno())
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        open_directions[0] -= 1
        if open_directions[0] == 0:
            src.close()
            dst.close()


def splice_relay() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"ready {listener.getsockname()[1]}", flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_splice_tunnel, args=(client,), daemon=True).start()


def _splice_tunnel(client: socket.socket) -> None:
    target = client.recv(4096).split(b" ", 2)[1].decode()  # CONNECT host:port: one read
    host, _, port = target.rpartition(":")
    upstream = socket.create_connection((host, int(port)))
    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    up = threading.Thread(target=_splice_one_way, args=(client, upstream), daemon=True)
    up.start()
    _splice_one_way(upstream, client)
    up.join()
    client.close()
    upstream.close()


def _splice_one_way(src: socket.socket, dst: socket.socket) -> None:
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)
    try:
        while n := os.splice(src.fileno(), w, 1 << 20, flags=os.SPLICE_F_MOVE):
            while n:
                n -= os.splice(r, dst.fileno(), n, flags=os.SPLICE_F_MOVE)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        os.close(r)
        os.close(w)


if __name__ == "__main__":
    if sys.argv[1] == "splice":
        splice_relay()
    else:
        BareRelay(sys.argv[1]).run()
