"""Hostile JSON lines on agent.sock (a real unix socket, the real handler) and on a real
daemon's operator.sock: each is answered with a clear error code, the connection is closed,
and the log gets one line, never a traceback."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from pathlib import Path

import pytest

from console.wire import AGENT_MAX_LINE
from tests.conftest import Daemon

from .conftest import WAIT, AgentServer

DEEP = b'{"v":1,"id":1,"op":"ask","args":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
HUGE_NUMBER = b'{"v":1,"id":' + b"9" * 50_000 + b',"op":"ask","args":{}}\n'
BLANKS = b"\n" * 20_000 + b'{"v":1,"id":1,"op":"status","args":{"request_id":"x"}}\n'
OVERSIZE = b'{"v":1,"id":1,"op":"ask","args":{"subject":"' + b"a" * (AGENT_MAX_LINE * 2) + b'"}}\n'

CASES = {"deep": (DEEP, "bad-message"), "huge_number": (HUGE_NUMBER, "bad-message"),
         "blank_flood": (BLANKS, "bad-message"), "oversize": (OVERSIZE, "bad-message")}


async def _exchange(path: Path, payload: bytes) -> tuple[list[dict], bool]:
    """Send payload; return the replies and whether the daemon closed the connection."""
    reader, writer = await asyncio.open_unix_connection(str(path), limit=4 * AGENT_MAX_LINE)
    writer.write(payload)
    try:
        await writer.drain()
    except ConnectionError:
        pass
    replies: list[dict] = []
    closed = False
    try:
        while True:
            line = await asyncio.wait_for(reader.readline(), WAIT)
            if not line:
                closed = True
                break
            replies.append(json.loads(line))
    except (ConnectionError, TimeoutError):
        closed = closed or reader.at_eof()
    writer.close()
    return replies, closed


@pytest.mark.parametrize("name", sorted(CASES))
async def test_malformed_agent_input_gets_an_error_and_a_close(
        name: str, agent_server: AgentServer, caplog: pytest.LogCaptureFixture) -> None:
    payload, code = CASES[name]
    caplog.set_level(logging.DEBUG)
    replies, closed = await _exchange(agent_server.path, payload)
    assert replies, f"{name}: the connection was dropped without an answer"
    assert replies[0]["error"]["code"] == code, replies[0]
    assert closed, f"{name}: the connection stayed open"
    assert not [r for r in caplog.records if r.exc_info], "no traceback for hostile input"
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) <= 1


def test_malformed_operator_input_gets_an_error_and_no_traceback(daemon: Daemon) -> None:
    for payload in (DEEP, HUGE_NUMBER, b"\n" * 20_000 + b"{}\n"):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(WAIT)
            s.connect(str(daemon.sock))
            s.sendall(payload)
            data = b""
            while b"\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        reply = json.loads(data.split(b"\n")[0])
        assert reply["error"]["code"] in ("bad-message", "bad-request"), reply
    assert daemon.cli("status").returncode == 0
    assert "Traceback" not in (daemon.home / "daemon-test.log").read_text()


NOT_UTF8 = {
    "utf16": '{"v":1,"id":1,"op":"status","args":{}}'.encode("utf-16") + b"\n",
    "bom": b'\xef\xbb\xbf{"v":1,"id":1,"op":"status","args":{}}\n',
    "encoded_surrogate": b'{"v":1,"id":1,"op":"ask","args":{"subject":"\xed\xa0\x80"}}\n',
    "latin1": b'{"v":1,"id":1,"op":"ask","args":{"subject":"caf\xe9"}}\n',
    "escaped_surrogate": b'{"v":1,"id":1,"op":"ask","args":{"subject":"\\udcff"}}\n',
}


@pytest.mark.parametrize("name", sorted(NOT_UTF8))
async def test_a_line_that_is_not_utf8_text_gets_an_error_and_the_connection_goes_on(
        name: str, agent_server: AgentServer, caplog: pytest.LogCaptureFixture) -> None:
    # json.loads would have guessed UTF-16 or taken the byte-order mark and the encoded
    # surrogate; the wire reads UTF-8 only, and says so without a traceback.
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_unix_connection(str(agent_server.path))
    writer.write(NOT_UTF8[name] + b'{"v":1,"id":2,"op":"status","args":{"request_id":"x"}}\n')
    await writer.drain()
    first = json.loads(await asyncio.wait_for(reader.readline(), WAIT))
    second = json.loads(await asyncio.wait_for(reader.readline(), WAIT))
    writer.close()
    assert first["id"] is None and first["error"]["code"] == "bad-message", first
    assert second["id"] == 2, second  # answered: the connection went on
    assert not [r for r in caplog.records if r.exc_info]
