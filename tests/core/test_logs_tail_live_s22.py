"""`logs RUN --tail N` of a live run printed more than N lines: the op found the tail over what
was committed, then flushed the writer and sent every line after the tail's start, so lines
committed in between came too (CI saw `--tail 1` print two). The daemon here is real; a
sitecustomize in its environment makes the tail's lookup come back late while the run prints
every 10 ms, so the gap is met every time.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import daemon_with_sitecustomize

SLOW_TAIL = '''
import time
from store import history
_tail_after = history.tail_after

def tail_after(db, run_id, n, search=None):
    found = _tail_after(db, run_id, n, search)
    time.sleep(0.5)  # the run prints on meanwhile
    return found

history.tail_after = tail_after
'''


def test_a_tail_of_a_live_run_is_as_many_lines_as_asked(
        home: Path, daemon_env: dict[str, str], workspace: Path, tmp_path: Path) -> None:
    d = daemon_with_sitecustomize(home, daemon_env, tmp_path / "hooks", SLOW_TAIL,
                                  '[profiles.bare]\ncommand = ["true"]\nsandbox = "none"\n')
    d.start()
    try:
        run_id = d.cli("run", "bare", "-w", str(workspace), "--", "sh", "-c",
                       "i=0; while [ $i -lt 3000 ]; do echo tick-$i; i=$((i+1)); sleep 0.01; done"
                       ).stdout.strip()
        deadline = time.monotonic() + 20
        while "tick-20" not in d.cli("logs", run_id).stdout:
            assert time.monotonic() < deadline, "the run printed nothing"
            time.sleep(0.1)
        outs = {n: d.cli("logs", run_id, "--tail", str(n)).stdout.splitlines() for n in (1, 3)}
        searched = d.cli("logs", run_id, "--tail", "2", "--search", "tick").stdout.splitlines()
        d.cli("stop", run_id, check=False)
    finally:
        d.stop()
    for n, lines in outs.items():
        assert len(lines) == n, (n, lines)
        assert all(line.startswith("tick-") for line in lines), lines
        ticks = [int(line.removeprefix("tick-")) for line in lines]
        assert ticks == list(range(ticks[0], ticks[0] + n)), lines  # the last n, in order
    assert len(searched) == 2, searched
