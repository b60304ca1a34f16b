"""Review of the CLI's blocking client (2026-12-01): a daemon that goes away with the request
unread resets the connection (ECONNRESET on a unix socket); the person must get the client's
"daemon closed the connection" error (ClientError, shown by `friendly`), not a traceback."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from console.client.sync import Client, ClientError
from console.paths import Paths


def test_a_reset_connection_is_a_client_error(tmp_path: Path) -> None:
    sock_path = tmp_path / "operator.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen()

    def gone_without_reading() -> None:
        conn, _ = server.accept()
        conn.recv(1, socket.MSG_PEEK)  # the request is in its queue, and stays unread
        conn.close()  # unread data: the client's read is ECONNRESET

    t = threading.Thread(target=gone_without_reading)
    t.start()
    paths = Paths(tmp_path, tmp_path, tmp_path, tmp_path, tmp_path / "config.toml")
    client = Client(paths, autostart=False)
    try:
        with pytest.raises(ClientError):
            client.call("status")
        t.join(10)
    finally:
        client.close()
        server.close()
