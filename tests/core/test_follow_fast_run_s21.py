"""`run --wait` (and `logs -f`) of a run that ends while its stored output is read lost the
run's last lines: the logs op read the store, found the run gone from the live table, and
returned, though the lines published meanwhile were stored by then (a fast unsandboxed run's
whole output went missing once in a full `make test`). The daemon here is real; a
sitecustomize in its environment makes the store's last (empty) page of a run's output come
back late, so the run prints and ends in that gap every time.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import daemon_with_sitecustomize

SLOW_LAST_PAGE = '''
import time
from store import history
_query = history.query_output
_late = set()

def query_output(db, run_id, **kw):
    rows = _query(db, run_id, **kw)
    if not rows and run_id not in _late:  # the end of the stored output: wait while it ends
        _late.add(run_id)
        time.sleep(1.5)
    return rows

history.query_output = query_output
'''


def test_the_lines_of_a_run_that_ends_while_its_output_is_read_are_followed(
        home: Path, daemon_env: dict[str, str], workspace: Path, tmp_path: Path) -> None:
    d = daemon_with_sitecustomize(home, daemon_env, tmp_path / "hooks", SLOW_LAST_PAGE,
                                  '[profiles.bare]\ncommand = ["true"]\nsandbox = "none"\n')
    d.start()
    try:
        done = d.cli("run", "bare", "-w", str(workspace), "--wait", "--", "sh", "-c",
                     "sleep 0.5; echo the-last-line; exit 3", check=False)
    finally:
        d.stop()
    assert "the-last-line" in done.stdout, done.stdout + done.stderr
    assert done.returncode == 3, done.stderr
