"""Review h191 (aider, a `.env` at the repository's top): variables of Python's own that make
aider, or a Python it starts, run a program. aider loads the workspace's `.env` over its
environment, and the read-only env file it loads last (review h163, console/agents/aider_env.py)
pinned PYTHONPATH, PYTHONHOME and PYTHONSAFEPATH, but not:

- BROWSER, the program Python's `webbrowser` runs to open a page: aider opens its documentation
  by itself (a model it has no metadata for, "Open documentation url?", answered yes under
  --yes-always), so the repository's command ran in aider's own process at start;
- PYTHONWARNINGS, whose `-W` categories Python imports by module name when it starts: a category
  in the standard library's `antigravity` opens a page from aider's own lint (`python -m
  flake8`), with BROWSER as above;
- PYTHONPYCACHEPREFIX, where Python looks for compiled modules: a `.pyc` of flake8's
  `__main__` under it, stamped with the installed source's time and size, ran at that lint.

Real aider, a scripted model that edits one file (as in h163); bubblewrap, and Docker for the
first (the image's own aider and Python, the same file and variable).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap

from .aider_edit import AIDER_EDIT, edit_app
from .model_server import ModelServer
from .real_harness import agent_fixtures
from .test_review_h163 import MARK

pytestmark = needs_bwrap
aider, backend, model_server, daemon_env = agent_fixtures(AIDER_EDIT)

PYC_PREFIX = "pyc"  # in the workspace
# Compiles a stand-in for flake8's __main__ (run by aider's lint) with the real file's stamp,
# where Python looks for it under PYTHONPYCACHEPREFIX. Run with aider's own Python (bwrap
# shows the host's install as it is).
FORGE_PYC = f"""
import importlib._bootstrap_external as be, os, sys
import flake8.__main__ as real
src = real.__file__
code = compile("open({MARK!r}, 'w').write('x')", src, "exec")
st = os.stat(src)
out = os.path.join(sys.argv[1], os.path.dirname(src).lstrip("/"),
                   "__main__." + sys.implementation.cache_tag + ".pyc")
os.makedirs(os.path.dirname(out), exist_ok=True)
open(out, "wb").write(be._code_to_timestamp_pyc(code, st.st_mtime, st.st_size))
"""

DOT_ENVS = {
    "browser": f"BROWSER='touch {MARK} %s'\n",
    "warnings": f"PYTHONWARNINGS=ignore::antigravity.Planted\nBROWSER='touch {MARK} %s'\n",
    "pycache_prefix": f"PYTHONPYCACHEPREFIX=/workspace/{PYC_PREFIX}\n",
}
CASES = [("browser", "bwrap"), ("warnings", "bwrap"), ("pycache_prefix", "bwrap"),
         ("browser", "docker")]


@pytest.mark.parametrize(("plant", "backend"), CASES, indirect=["backend"])
def test_pythons_own_variables_in_dot_env_start_nothing_in_aider(
        plant: str, backend: str, aider: str, model_server: ModelServer, daemon: Daemon,
        workspace: Path) -> None:
    (workspace / ".env").write_text(DOT_ENVS[plant])
    if plant == "pycache_prefix":
        python = str(Path(aider).resolve().parent / "python")
        subprocess.run([python, "-c", FORGE_PYC, str(workspace / PYC_PREFIX)], check=True,
                       cwd=workspace)
    ws, out, person = edit_app(daemon, aider, workspace, backend, model_server)
    assert model_server.posts("/chat/completions"), out
    assert (ws / "app.py").read_text() == "x = 2\n", f"the edit was not made:\n{out}"
    assert not (ws / MARK).exists(), f"{plant}: the repository's program ran unasked:\n{out}"
    assert person.asked("exec") == []
