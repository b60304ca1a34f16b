"""Review s17 (daemon): numbers and lists in operator.sock arguments that no client sends, from
anyone who may watch. Each reached SQLite, the history's JSON or a set unchecked and came back
as an `internal` error ("... failed inside the daemon: OverflowError ...", a traceback in the
daemon's log) rather than the `bad-args` answer that says which argument is wrong. Secure: a
clear error naming the argument, and no traceback.

A real daemon on a temporary home, its real operator.sock. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.conftest import Daemon

BIG = str(2**70)
CASES = {
    "history before_id past 2**63": ('"history"', '{"before_id": ' + BIG + '}', "bad-args"),
    "logs tail past 2**63": ('"logs"', '{"run": "r1", "tail": ' + BIG + '}', "bad-args"),
    "history since NaN": ('"history"', '{"since": NaN}', "bad-args"),
    "history until -Infinity": ('"history"', '{"until": -Infinity}', "bad-args"),
    "prune older_than_s NaN": ('"prune"', '{"older_than_s": NaN, "confirm": true}', "bad-args"),
    "prune older_than_s past 2**63": ('"prune"', '{"older_than_s": ' + BIG + '}', "bad-args"),
    "subscribe a topic that is a list": ('"subscribe"', '{"topics": [[1]]}', "bad-args"),
    "shadow of an unknown profile": ('"policy.shadow"', '{"rule": "make", "profile": "nope"}',
                                     "no-such-profile"),
}


def _ask(sock: Path, op: str, args: str) -> dict:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(str(sock))
        s.sendall(('{"v": 1, "id": 1, "op": ' + op + ', "args": ' + args + "}\n").encode())
        return json.loads(s.makefile("rb").readline())


@pytest.mark.parametrize("case", list(CASES))
def test_an_odd_argument_is_a_clear_error(daemon: Daemon, case: str) -> None:
    op, args, code = CASES[case]
    answer = _ask(daemon.sock, op, args)
    assert answer["ok"] is False and answer["error"]["code"] == code, answer
    assert "Traceback" not in daemon.log()


def test_held_nothing_was_pruned_and_the_history_still_answers(daemon: Daemon) -> None:
    for case in ("prune older_than_s NaN", "prune older_than_s past 2**63"):
        _ask(daemon.sock, *CASES[case][:2])
    answer = _ask(daemon.sock, '"history"', '{"kind": "store."}')
    assert answer["ok"] is True and answer["result"] == [], answer
