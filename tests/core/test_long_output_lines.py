"""A run's output of long lines reaches a person whole, live and replayed.

Found in review s14: `run --wait` of a flood of long lines died with "SystemError: <_json.Scanner
object> returned NULL without setting an exception". A page of 1,000 stored lines (each up to
16 KiB), or 50 ms of a flood, went to the client as ONE message, past the 4 MiB a client reads
as one (wire.OPERATOR_MAX_LINE); the cut message was not JSON, and the C scanner, which raises
its syntax errors through json.decoder only when that module is loaded, failed without an error.

Now a batch of output is at most OUTPUT_EVENT_CHARS characters (output_pump.py), live and
replayed, and wire.loads names a syntax error whether or not json.decoder was loaded.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from console.daemon.output_pump import OUTPUT_EVENT_CHARS, line_batches
from tests.conftest import Daemon, needs_bwrap

LINES, WIDTH = 600, 15_000  # 9 MB: more than two client messages' worth


@needs_bwrap
def test_a_flood_of_long_lines_is_shown_whole_live_and_replayed(daemon: Daemon,
                                                                workspace: Path) -> None:
    script = f"import sys\nfor i in range({LINES}): sys.stdout.write(f'{{i:06d}}' + 'x' * {WIDTH} + '\\n')\n"
    (workspace / "flood.py").write_text(script)
    done = daemon.cli("run", "demo", "-w", str(workspace), "--wait", "--", "python3", "flood.py",
                      check=False, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    live = [line for line in done.stdout.splitlines() if line.endswith("x" * 100)]
    assert len(live) == LINES and live[-1].startswith(f"{LINES - 1:06d}"), len(live)
    run_id = daemon.cli("ps", "-a", "--json").stdout.split('"id": "')[1].split('"')[0]
    replayed = daemon.cli("logs", run_id, check=False, timeout=120)
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    assert sum(1 for line in replayed.stdout.splitlines() if line.endswith("x" * 100)) == LINES


def test_batches_keep_every_line_in_order_within_the_bound() -> None:
    lines = [str(i) * (i % 7) * 9000 for i in range(200)]
    batches = line_batches(lines)
    assert [line for batch in batches for line in batch] == lines
    assert all(sum(map(len, b)) <= OUTPUT_EVENT_CHARS or len(b) == 1 for b in batches)
    assert line_batches([]) == [] and line_batches(["a" * (OUTPUT_EVENT_CHARS + 1)]) == [
        ["a" * (OUTPUT_EVENT_CHARS + 1)]]


def test_a_syntax_error_is_named_without_json_decoder_loaded() -> None:
    child = textwrap.dedent("""
        import sys
        from console import wire
        assert "json.decoder" not in sys.modules
        try:
            wire.loads('{"kind": "run.output", "lines": ["cut her')
        except ValueError as exc:
            print(type(exc).__name__, exc)
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=30, cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.startswith("JSONDecodeError Unterminated string"), (done.stdout,
                                                                          done.stderr)
