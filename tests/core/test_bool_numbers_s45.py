"""Review h190 (s45): JSON's `true` read as the number 1. Python's bool is an int, so
`"older_than_s": true` on operator.sock asked for a prune of everything older than one second,
`"since": true` was the epoch's second one, and `"v": true` spoke protocol version 1. A client
that sends a boolean for a number is broken or probing: it gets the `bad-args` (or protocol)
answer naming the argument, and nothing is done.

A real daemon on a temporary home, its real operator.sock. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.conftest import Daemon

CASES = {
    "prune older_than_s true": ('"prune"', '{"older_than_s": true}'),
    "history since true": ('"history"', '{"since": true}'),
    "history until false": ('"history"', '{"until": false}'),
    "history limit true": ('"history"', '{"limit": true}'),
}


def _ask(sock: Path, line: str) -> dict:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(str(sock))
        s.sendall(line.encode() + b"\n")
        return json.loads(s.makefile("rb").readline())


@pytest.mark.parametrize("case", list(CASES))
def test_a_boolean_is_not_a_number(daemon: Daemon, case: str) -> None:
    op, args = CASES[case]
    answer = _ask(daemon.sock, '{"v": 1, "id": 1, "op": ' + op + ', "args": ' + args + "}")
    assert answer["ok"] is False and answer["error"]["code"] == "bad-args", answer
    assert "wrong type" in answer["error"]["message"], answer


@pytest.mark.parametrize("version", ["true", "1.0"])
def test_the_protocol_version_is_the_integer_1(daemon: Daemon, version: str) -> None:
    answer = _ask(daemon.sock, '{"v": ' + version + ', "id": 1, "op": "ping", "args": {}}')
    assert answer["ok"] is False, answer
    assert "protocol version" in json.dumps(answer), answer
