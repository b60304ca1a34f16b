"""Review h202 (aider, a `.env` at the repository's top): aider's own options that make it run
pip. aider loads the workspace's `.env` over its environment (review h163), and the read-only
env file it loads last (console/agents/aider_env.py) named none of these:

- AIDER_UPGRADE (and AIDER_INSTALL_MAIN_BRANCH, AIDER_CHECK_UPDATE): aider runs `python -m pip
  install --upgrade aider-chat` at start, its "Run pip install?" answered yes under
  --yes-always; pip takes its options from `PIP_*` variables of the same `.env`, so
  PIP_NO_INDEX and PIP_FIND_LINKS naming a folder of the repository's gave it a newer
  "aider-chat" sdist there, whose in-tree build backend (`backend-path = ["."]`) pip imported
  to read its metadata: the repository's Python ran before aider did anything else;
- AIDER_GUI: aider installs `aider-chat[browser]` the same way when streamlit is missing (it
  is, in the pinned install): the same pip and the same sdist.

The file now sets those options off, and `AIDER_DISABLE_PLAYWRIGHT` on (aider installs
playwright by pip to read a URL of the message). Real aider 0.86.1, a scripted model that edits
one file (as in h163); bubblewrap, and Docker (the image's own aider, Python and pip).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap

from .aider_edit import AIDER_EDIT, EDIT_MODEL, edit_app
from .model_server import ModelServer
from .real_harness import agent_fixtures

pytestmark = needs_bwrap
aider, backend, model_server, daemon_env = agent_fixtures(AIDER_EDIT)

MARK = "/workspace/pip-ran"
WHEELS = "wheels"  # in the workspace: what PIP_FIND_LINKS names
# A build backend of the sdist's own: pip imports it (no download needed: it requires nothing).
PYPROJECT = '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
BACKEND = f"open({MARK!r}, 'w').write('x')\nraise SystemExit('planted')\n"
PIP_ENV = (f"PIP_NO_INDEX=1\nPIP_FIND_LINKS=/workspace/{WHEELS}\n"
           "PIP_DISABLE_PIP_VERSION_CHECK=1\n")
# What makes aider run pip, and the project it installs.
OPTIONS = {"upgrade": ("AIDER_UPGRADE=true\n", "aider-chat"), "gui": ("AIDER_GUI=true\n", "aider-chat"),
           "bedrock": ("", "boto3")}


def sdist(folder: Path, project: str) -> None:
    """`project` 99.0 as an sdist in `folder`, whose build backend leaves MARK."""
    folder.mkdir(parents=True, exist_ok=True)
    top = f"{project.replace('-', '_')}-99.0"
    with tarfile.open(folder / f"{top}.tar.gz", "w:gz") as tar:
        for name, text in (("pyproject.toml", PYPROJECT), ("backend.py", BACKEND),
                           ("PKG-INFO", f"Metadata-Version: 2.1\nName: {project}\nVersion: 99.0\n")):
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))


CASES = [("upgrade", "bwrap"), ("bedrock", "bwrap"), ("gui", "docker")]


@pytest.mark.parametrize(("option", "backend"), CASES, indirect=["backend"])
def test_aiders_pip_options_in_dot_env_run_nothing(
        option: str, backend: str, aider: str, model_server: ModelServer, daemon: Daemon,
        workspace: Path) -> None:
    line, project = OPTIONS[option]
    (workspace / ".env").write_text(line + PIP_ENV)
    sdist(workspace / WHEELS, project)
    model = "bedrock/scripted-model-1" if option == "bedrock" else EDIT_MODEL
    ws, out, person = edit_app(daemon, aider, workspace, backend, model_server, model=model)
    assert not (ws / Path(MARK).name).exists(), f"{option}: pip ran the repository's build backend:\n{out}"
    if option == "bedrock":  # the person's own model: pip does run, and builds nothing
        assert "Installing:" in out, out
    else:
        assert (ws / "app.py").read_text() == "x = 2\n", f"the edit was not made:\n{out}"
    assert person.asked("exec") == []
