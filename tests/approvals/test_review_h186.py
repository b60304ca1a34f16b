"""Review h186: `pilothouse approve ID` naming a request that is not pending when it looks.

`approve` shows the request under ID and, at a terminal, asks before it allows; the decision
then names the request shown (when it was asked: review s22). When ID named no pending request
(it had closed: timed out, denied by a teammate, withdrawn), nothing was shown and nothing
asked, and the decision went out by the id alone: an agent's next request, given that id in the
moment between the look and the decision, was allowed, never on the screen (ids come back).

A real daemon whose sitecustomize gives every request the same id (as in s22) and holds its
answer to the look until the agent's next request is pending, so the moment is there every
time; real bubblewrap, the real `ph-ask`, the CLI on a real pty.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.approvals.terminal import at_a_terminal
from tests.conftest import Daemon, daemon_with_sitecustomize, needs_bwrap
from tests.core.test_approvals_e2e import background, wait_pending

HELD = '''
import asyncio
from pathlib import Path
from console.daemon import inbox
from console.daemon.ops import approvals as ops
from console.daemon.ops.base import Op

inbox.Inbox._new_id = lambda self: "reqa"
FOLDER = Path({folder!r})
_list = ops.approvals_list


async def held(core, peer, args, send):
    rows = await _list(core, peer, args, send)
    if not rows and (FOLDER / "hold").exists():  # the look found nothing: the agent asks now
        (FOLDER / "holding").write_text("")
        while not core.inbox.pending():
            await asyncio.sleep(0.02)
    return rows

ops.OPS["approvals.list"] = Op(held)
'''


def pending_subjects(d: Daemon) -> list[str]:
    return [r["subject"] for r in json.loads(d.cli("approvals", "--json").stdout)]


@needs_bwrap
def test_approve_of_an_id_not_pending_decides_nothing(
        home: Path, daemon_env: dict[str, str], workspace: Path, tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    d = daemon_with_sitecustomize(home, daemon_env, hooks, HELD.format(folder=str(hooks)), "")
    d.start()
    try:
        t, out = background(d, workspace, (
            "ph-ask exec -- make shown; echo rc1=$?; i=0; "
            "while [ ! -e go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; "
            "ph-ask exec -- make never-shown; echo rc2=$?"))
        assert wait_pending(d)[0]["subject"] == "make shown"
        d.cli("deny", "reqa")  # closed while the person turned to their shell
        (hooks / "hold").write_text("")
        def release_the_agent() -> None:  # the look is held: the agent asks its next now
            if (hooks / "holding").exists() and not (workspace / "go").exists():
                (workspace / "go").write_text("")

        rc, shown = at_a_terminal(d, "approve", "reqa", answer=b"\n", meanwhile=release_the_agent,
                                  env={k: v for k, v in d.env.items() if k != "PYTHONPATH"})
        assert rc != 0, shown
        assert "nothing was decided" in shown and "Traceback" not in shown, shown
        assert "make never-shown" not in shown, shown  # never shown, and not allowed either
        (hooks / "hold").unlink()
        assert pending_subjects(d) == ["make never-shown"], "the unshown request was decided"
        d.cli("deny", "reqa", "--yes")
        t.join(timeout=60)
    finally:
        d.stop()
    text = out["result"].stdout
    assert "rc1=" in text and "rc1=0" not in text, text
    assert "rc2=" in text and "rc2=0" not in text, text  # never shown: not approved
