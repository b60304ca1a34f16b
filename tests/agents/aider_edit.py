"""aider's one scripted edit, for the tests of what a repository's files make the real aider
start by itself (reviews h163, h191, h193, h202): the agent, whose model answers one change of
app.py in aider's diff format, and the run a person would start after the test has planted its
files in the workspace.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Daemon

from .model_server import ModelServer
from .real_harness import Person, RealAgent, agent_workspace, hand_over, model_hostport, run_agent

AIDER_HOSTED = ("**.openai.com", "**.anthropic.com", "**.githubusercontent.com", "**.github.com",
                "pypi.org", "openrouter.ai")
# An answer in aider's diff format that changes app.py and suggests no command.
EDIT_ANSWER = ("Done.\n\napp.py\n```python\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n"
               ">>>>>>> REPLACE\n```\n")
AIDER_EDIT = RealAgent(
    "aider", "aider", final_text=EDIT_ANSWER, hosted=AIDER_HOSTED,
    api_env=lambda srv: {"OPENAI_API_KEY": "sk-test-not-a-key", "OPENAI_API_BASE": f"{srv.url}/v1"},
)
EDIT_MODEL = "openai/scripted-model-1"


def edit_app(daemon: Daemon, aider: str, workspace: Path, backend: str, srv: ModelServer,
             model: str = EDIT_MODEL, options: tuple[str, ...] = ()) -> tuple[Path, str, Person]:
    """Write app.py (`x = 1`), commit the workspace with what the test planted (the repository
    as cloned), then run aider as a person would: its own lint on (its default), app.py in the
    chat, "Set x to 2", `options` first; the person at the inbox allows no command. Returns the
    workspace, the run's output (stdout, then stderr) and the person."""
    (workspace / "app.py").write_text("x = 1\n")
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    command = [aider, *options, "--model", model, "--edit-format", "diff",
               "--no-gitignore", "--message", "Set x to 2", "app.py"]
    done, _, person = run_agent(daemon, "aider", ws, command, False, model_hostport(srv))
    return ws, done.stdout + done.stderr, person
