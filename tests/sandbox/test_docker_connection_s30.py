"""The Docker engine's client sends each call on a connection of its own (s30).

A full `make test` had a run fail to start with "('Connection aborted.', RemoteDisconnected(
'Remote end closed connection without response'))": the engine closed a kept-alive connection
just as the client sent its next call on it. Here an engine on a unix socket answers the first
request of each connection and drops any later one, unanswered, as the real engine's close does
when it wins that race: the backend's client must never send a second call on one connection.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from console.sandbox.docker import DockerBackend


def _answer(body: bytes, kind: bytes, close: bool) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nApi-Version: 1.45\r\nContent-Type: " + kind +
            (b"\r\nConnection: close" if close else b"") +
            b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def _engine(path: Path, stop: threading.Event) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(8)
    listener.settimeout(0.2)

    def serve(conn: socket.socket) -> None:
        with conn:
            first = True
            while not stop.is_set():
                head = b""
                while b"\r\n\r\n" not in head:
                    piece = conn.recv(4096)
                    if not piece:
                        return
                    head += piece
                if not first:
                    return  # a call on a kept-alive connection: closed without an answer
                close = b"connection: close" in head.lower()  # as the engine (Go's server) does
                conn.sendall(_answer(b'{"ApiVersion": "1.45", "Version": "27.0.0"}',
                                     b"application/json", close)
                             if b"/version" in head.split(b"\r\n", 1)[0]
                             else _answer(b"OK", b"text/plain; charset=utf-8", close))
                if close:
                    return
                first = False

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener


def test_each_call_to_the_engine_has_a_connection_of_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("docker")
    sock, stop = tmp_path / "docker.sock", threading.Event()
    listener = _engine(sock, stop)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    try:
        client = DockerBackend(owner="t").client
        for _ in range(5):
            assert client.ping() is True
    finally:
        stop.set()
        listener.close()
