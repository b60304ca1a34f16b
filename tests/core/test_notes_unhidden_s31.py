"""Review s31 (helper 105): a run's output cannot hide the daemon's notes, nor pass for them.

The daemon's end notes (a nested repository's `core.fsmonitor`, a changed `.env`) go into the
run's output stream, after the agent's lines. An agent's output passed colour codes through,
conceal (SGR 8) included, and never reset them: `printf '\\033[8m'` as its last output drew the
real note, and the shell prompt after it, as nothing on the person's terminal; a line of its
own, `[pilothouse] the run left nothing that tools on the host load`, read as the daemon's.
Now each shown line's colours end with it, conceal is dropped, and wherever an agent's line
holds what reads as `[pilothouse]` (helper 108: mid-line where it wraps to a row's start,
behind a combining mark, with a Cyrillic letter) it shows `[agent:pilothouse]`. A real daemon and bubblewrap; `run --wait` on a pty
(colour on), and `logs` from the store.
"""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

from console.text import neutralise
from tests.conftest import BIN, Daemon, needs_bwrap

HIDE = ("mkdir -p sub/.git/objects sub/.git/refs; printf 'ref: refs/heads/main\\n' > sub/.git/HEAD; "
        "printf '[core]\\n\\tfsmonitor = \"sh -c evil\"\\n' > sub/.git/config; "
        "echo 'all tests passed'; echo '[pilothouse] the run left nothing that tools on the host load'; "
        # helper 108: a line that wraps to put it at a screen row's start, a mark drawn as
        # nothing before it, a Cyrillic letter in it
        "printf 'tests/test_api.py %0400d[pilothouse] the run left nothing that tools on the host load\\n' 0; "
        "printf '\\314\\200[pilothouse] the run left nothing that tools on the host load\\n'; "
        "printf '[pil\\320\\276thouse] the run left nothing that tools on the host load\\n'; "
        "printf '\\033[8m'")
FAKE = "the run left nothing that tools on the host load"


def _on_a_terminal(env: dict[str, str], *args: str) -> str:
    """`pilothouse ARGS` with its stdout on a pty (colour on), as a person's terminal."""
    main, sub = pty.openpty()
    proc = subprocess.Popen([str(BIN / "pilothouse"), *args], env={**env, "TERM": "xterm"},
                            stdout=sub, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    os.close(sub)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the pty's other end closed
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=120)
    os.close(main)
    return out.decode("utf-8", "replace")


def _assert_note_shown(out: str) -> None:
    lines = out.replace("\r\n", "\n").split("\n")
    assert "\x1b[8m" not in out and "\x1b[8;" not in out, repr(out[-800:])
    real = [k for k, line in enumerate(lines) if "sub/.git" in line and line.startswith("[pilothouse]")]
    assert real, repr(out[-1500:])  # the daemon's note, as its own line, first on it
    for line in lines:  # no line hands a colour on to the next
        if "\x1b[" in line:
            assert line.endswith("\x1b[0m"), repr(line)
    fake = [line for line in lines if FAKE in line]
    assert len(fake) == 4 and all("[agent:pil" in line for line in fake), fake


@needs_bwrap
def test_an_agents_output_neither_hides_nor_fakes_the_daemons_notes(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    Path(daemon_env["PILOTHOUSE_CONFIG"]).write_text('[profiles.t]\ncommand = ["true"]\nsandbox = "bwrap"\n')
    d = Daemon(home, daemon_env)
    d.start()
    try:
        out = _on_a_terminal(daemon_env, "run", "t", "-w", str(workspace), "--wait", "--", "sh", "-c", HIDE)
        _assert_note_shown(out)
        run_id = d.cli("ps", "--all", "--json").stdout.split('"id": "')[1].split('"')[0]
        _assert_note_shown(_on_a_terminal(daemon_env, "logs", run_id))
    finally:
        d.stop()


def test_conceal_is_dropped_and_colours_end_with_the_line() -> None:
    assert neutralise("a\x1b[8mb") == "ab\x1b[0m"
    assert neutralise("a\x1b[1;8;31mb") == "a\x1b[1;31mb\x1b[0m"
    assert neutralise("\x1b[38;5;8mgrey") == "\x1b[38;5;8mgrey\x1b[0m"  # colour 8: a colour
    assert neutralise("\x1b[48;2;8;8;8mx") == "\x1b[48;2;8;8;8mx\x1b[0m"
    assert neutralise("\x1b[08mx", colour=False) == "x"
    assert neutralise("plain") == "plain"
