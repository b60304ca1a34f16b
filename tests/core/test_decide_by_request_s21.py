"""Review s21 (console): the daemon decided by id alone, and ids come back (four letters; the
daemon keeps only its last closed ones out of reuse, none across a restart). A decision the
console sent as the request it showed closed and a new request took its id decided the new
one, never shown. approval.decide now takes when the request was asked (`created_at`, as the
console shows it) and refuses another request under the id. A real daemon and bubblewrap.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from console.client.sync import Client, ClientError
from console.paths import resolve
from tests.conftest import Daemon, needs_bwrap

from .test_approvals_e2e import background, wait_pending


@needs_bwrap
def test_a_decision_names_the_request_it_was_shown(daemon: Daemon, workspace: Path) -> None:
    t, out = background(daemon, workspace, "ph-ask exec -- make deploy; echo rc=$?")
    req = wait_pending(daemon)[0]
    with Client(resolve(daemon.home), autostart=False) as c:
        with pytest.raises(ClientError) as refused:  # shown another request under this id
            c.call("approval.decide", id=req["id"], allow=True, created_at=req["created_at"] - 60)
        assert refused.value.code == "unknown-request"
        assert "not the one you were shown" in refused.value.message
        assert [r["id"] for r in wait_pending(daemon)] == [req["id"]], "still pending"
        decided = c.call("approval.decide", id=req["id"], allow=True, created_at=req["created_at"])
    assert decided["allow"] is True
    t.join(timeout=60)
    assert "rc=0" in out["result"].stdout


@needs_bwrap
def test_a_programs_approve_names_the_request_with_asked_at(daemon: Daemon,
                                                            workspace: Path) -> None:
    """`approve --json ID` decided by the id alone (h187): a program that read the request in
    `approvals --json` names it with --asked-at, and another request under the id is refused."""
    t, out = background(daemon, workspace, "ph-ask exec -- make deploy; echo rc=$?")
    req = wait_pending(daemon)[0]
    other = daemon.cli("approve", "--json", req["id"], "--asked-at",
                       repr(req["created_at"] - 60), check=False)
    assert other.returncode != 0 and "not the one you were shown" in other.stderr, other.stderr
    assert [r["id"] for r in wait_pending(daemon)] == [req["id"]], "still pending"
    done = daemon.cli("approve", "--json", req["id"], "--asked-at", repr(req["created_at"]))
    assert '"allow": true' in done.stdout, done.stdout
    t.join(timeout=60)
    assert "rc=0" in out["result"].stdout


@needs_bwrap
def test_a_preview_and_what_a_grant_covers_name_the_request_shown(daemon: Daemon,
                                                                  workspace: Path) -> None:
    """The rule preview and the list of what a grant would answer were made for whatever held
    the id (h186: a preview held while the request was replaced showed the new one's rules)."""
    t, out = background(daemon, workspace, "ph-ask exec -- make deploy; echo rc=$?")
    req = wait_pending(daemon)[0]
    with Client(resolve(daemon.home), autostart=False) as c:
        for op, extra in (("approval.preview", {}), ("approval.covers", {"scope": "run"})):
            with pytest.raises(ClientError) as refused:
                c.call(op, id=req["id"], allow=True, created_at=req["created_at"] - 60, **extra)
            assert refused.value.code == "unknown-request", (op, refused.value.message)
            assert "not the one you were shown" in refused.value.message
            c.call(op, id=req["id"], allow=True, created_at=req["created_at"], **extra)
        c.call("approval.decide", id=req["id"], allow=True, created_at=req["created_at"])
    t.join(timeout=60)
    assert "rc=0" in out["result"].stdout
