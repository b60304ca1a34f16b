"""Review h138: the daemon a command starts on demand runs `python -m console daemon` in the
folder the person typed the command in: usually the project, that is the workspace an agent
wrote in its last run. `-m` puts that folder first on sys.path, so a module the agent left
there (`shlex.py`, `termios.py`, `sqlite3.py`, even `console/`) was imported by the daemon at
its next start: the agent's code ran outside every sandbox, as the person (as root under a
root daemon). Its programs (notify_command, git) ran in that folder too.

Secure: the daemon starts with -P in `/`, and works in `/` whoever started it.

A real CLI start, a real daemon, a real bubblewrap run that writes the module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import needs_bwrap

PAYLOAD = '''
import os, sys
open(os.environ["H138_MARK"], "a").write("%s imported by pid %d in %s\\n" % (__name__, os.getpid(), os.getcwd()))
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
del sys.modules[__name__]
import importlib
sys.modules[__name__] = importlib.import_module(__name__)
'''
AGENT = "import sys; open('shlex.py', 'w').write(sys.argv[1]); open('termios.py', 'w').write(sys.argv[1])"
CONFIG = '[profiles.t]\ncommand = ["true"]\nsandbox = "bwrap"\n'


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # as the installed `pilothouse` program starts: its own folder, not the current one, on sys.path
    return subprocess.run([sys.executable, "-P", "-c", "from console.cli.main import main; main.script()",
                           *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)  # fmt: skip


def _stop(env: dict[str, str], cwd: Path) -> None:
    _cli(env, cwd, "daemon", "stop")
    time.sleep(0.2)


@needs_bwrap
def test_a_module_the_agent_left_in_the_workspace_is_not_imported_by_the_next_daemon(
        home: Path, daemon_env: dict[str, str], workspace: Path, tmp_path: Path) -> None:
    (home / "config.toml").write_text(CONFIG)
    mark = tmp_path / "mark"
    env = {**daemon_env, "H138_MARK": str(mark)}
    try:
        r = _cli(env, workspace, "run", "t", "--wait", "--", "python3", "-I", "-c", AGENT, PAYLOAD)
        assert r.returncode == 0, r.stdout + r.stderr
        assert (workspace / "shlex.py").exists()  # the agent wrote it, in its sandbox
        _stop(env, workspace)
        r = _cli(env, workspace, "ps")  # no daemon answers: this command starts one, here
        assert r.returncode == 0, r.stdout + r.stderr
        pid = int(_cli(env, workspace, "status", "--json").stdout.split('"pid":')[1].split(",")[0].strip())
        assert not mark.exists(), mark.read_text()
        assert os.readlink(f"/proc/{pid}/cwd") == "/"  # its programs do not start in the project
    finally:
        _stop(env, workspace)
