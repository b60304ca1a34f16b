"""What `pilothouse run --wait` asks the daemon: a person's run asks for nothing after the
output ends (the final record is for --json only: one round trip less at the end of every
waited run); a script's gets that record. Against a scripted operator socket, so the test sees
every request the CLI sends."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from pathlib import Path

from console import wire
from console.paths import resolve
from tests.conftest import BIN

FINAL = {"id": "ab12", "profile": "shell", "backend": "bwrap", "state": "exited",
         "exit_code": 3, "command": ["sh"], "notes": []}


class ScriptedDaemon(threading.Thread):
    """Answers the operator requests `run --wait` makes; records each op."""

    def __init__(self, home: Path) -> None:
        super().__init__(daemon=True)
        paths = resolve(home)
        paths.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(paths.operator_sock))
        self.listener.listen()
        self.ops: list[str] = []

    def run(self) -> None:
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as lines:
            for line in lines:
                req_id, op, args = wire.parse_request(wire.decode(line))
                self.ops.append(op)
                for message in self.answer(req_id, op, args):
                    conn.sendall(wire.encode(message))

    def answer(self, req_id, op, args):  # type: ignore[no-untyped-def]
        if op == "profiles":
            return [wire.ok(req_id, [{"name": "shell", "env": []}])]
        if op == "run.start":
            return [wire.ok(req_id, {**FINAL, "state": "running", "exit_code": None})]
        if op == "logs":
            return [wire.event({"kind": "run.output", "run_id": "ab12", "lines": ["hello"]}),
                    wire.ok(req_id, {"run": "ab12", "state": "exited", "exit_code": 3})]
        if op == "run.get":
            return [wire.ok(req_id, FINAL)]
        return [wire.error(req_id, {"code": "unknown-op", "message": op})]


def _run_wait(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    home = tmp_path / "home"
    home.mkdir()
    server = ScriptedDaemon(home)
    server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    env["PILOTHOUSE_HOME"] = str(home)
    done = subprocess.run([str(BIN / "pilothouse"), "run", "shell", "--wait", *extra],
                          env=env, capture_output=True, text=True, timeout=60)
    server.join(10)
    return done, server.ops


def test_a_person_s_waited_run_asks_nothing_after_its_output(tmp_path):
    done, ops = _run_wait(tmp_path)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "hello\n"
    assert ops == ["profiles", "run.start", "logs"]


def test_a_script_s_waited_run_gets_the_final_record(tmp_path):
    done, ops = _run_wait(tmp_path, "--json")
    assert done.returncode == 3, done.stderr
    assert json.loads(done.stdout) == FINAL
    assert ops == ["profiles", "run.start", "logs", "run.get"]
