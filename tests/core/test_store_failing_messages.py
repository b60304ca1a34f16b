"""Operations the store cannot record are refused, and the person reads what happened, why
and what to do; never 'X failed inside the daemon: StoreError'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.client.sync import Client, ClientError
from console.paths import resolve
from tests.conftest import Daemon, needs_bwrap
from tests.core.failing_store import store_failing
from tests.core.test_approvals_e2e import background, wait_pending


def _plain(text: str) -> None:
    assert "Traceback" not in text, text
    assert "failed inside the daemon" not in text and "StoreError" not in text, text
    assert "could not be recorded" in text, text


def test_a_prune_the_store_cannot_record_says_so_plainly(daemon: Daemon) -> None:
    with store_failing(daemon):
        out = daemon.cli("prune", "--older-than", "1s", "--yes", check=False)
    assert out.returncode != 0, out
    _plain(out.stderr)


@needs_bwrap
def test_a_revoke_the_store_cannot_record_says_so_plainly(daemon: Daemon, workspace: Path) -> None:
    t, out = background(daemon, workspace, "ph-ask exec -- make build; echo rc=$?")
    req = wait_pending(daemon)[0]
    daemon.cli("approve", req["id"], "--scope", "global")
    t.join(60)
    grant = json.loads(daemon.cli("grants", "--json").stdout)[0]
    with store_failing(daemon), Client(resolve(daemon.home), autostart=False) as client:
        with pytest.raises(ClientError) as caught:
            client.call("grant.revoke", id=grant["id"])
    assert [g["id"] for g in json.loads(daemon.cli("grants", "--json").stdout)] == [grant["id"]]
    _plain(f"{caught.value.code}: {caught.value.message} ({caught.value.hint})")
    assert caught.value.code == "record-failed", caught.value.code


@needs_bwrap
def test_a_decision_the_store_cannot_record_is_not_applied_and_can_be_made_again(
        daemon: Daemon, workspace: Path) -> None:
    t, out = background(daemon, workspace, "ph-ask exec -- make build; echo rc=$?")
    req = wait_pending(daemon)[0]
    with store_failing(daemon):
        refused = daemon.cli("approve", req["id"], "--scope", "run", check=False)
    assert refused.returncode != 0, refused
    assert "Traceback" not in refused.stderr and "could not be recorded" in refused.stderr
    assert json.loads(daemon.cli("grants", "--json").stdout) == []
    assert [r["id"] for r in json.loads(daemon.cli("approvals", "--json").stdout)] == [req["id"]]
    daemon.cli("approve", req["id"])
    t.join(60)
    assert "rc=0" in out["result"].stdout, out["result"]


def test_history_while_the_store_fails_says_so_plainly(daemon: Daemon) -> None:
    """A read, not an action: but the person still reads what happened and what to do."""
    with store_failing(daemon):
        daemon.cli("reload", check=False)  # something queued for the index
        out = daemon.cli("history", "--limit", "3", check=False)
    assert "Traceback" not in out.stderr, out.stderr
    assert "failed inside the daemon" not in out.stderr and "StoreError" not in out.stderr, \
        out.stderr
