"""A reload that forbids a command while a request for it is pending: neither a person nor a
grant can allow it. docs/policy.md: "A forbid rule cannot be overridden by a grant." Before, a
person's approve went through (the agent ran `make deploy`, rc=0), and a grant made for another
request answered the forbidden one as allowed. Found by an attack review."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from tests.conftest import Daemon, needs_bwrap
from tests.core.test_approvals_e2e import wait_pending

BASE = '[profiles.p]\ncommand = ["true"]\napproval_timeout = "60s"\n\n[profiles.p.exec]\nallow = ["ls"]\n'


def bg(d: Daemon, ws: Path, script: str) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def go() -> None:
        out["result"] = d.cli("run", "p", "-w", str(ws), "--wait", "--", "sh", "-c", script,
                              check=False, timeout=120)

    t = threading.Thread(target=go)
    t.start()
    return t, out


def forbid_deploy(d: Daemon, path: Path) -> None:
    """The config now forbids `make deploy`, in force: the daemon's own watcher may have
    reloaded it before `reload` (which then finds nothing changed), so the check says."""
    path.write_text(BASE + 'forbid = ["make deploy"]\n')
    d.cli("reload", "--json")
    check = json.loads(d.cli("policy", "check", "p", "--json", "--", "make deploy").stdout)
    assert check["decision"] == "deny", check


def start(home: Path, env: dict[str, str]) -> tuple[Daemon, Path]:
    path = Path(env["PILOTHOUSE_CONFIG"])
    path.write_text(BASE)
    d = Daemon(home, env)
    d.start()
    return d, path


@needs_bwrap
def test_a_pending_request_forbidden_by_a_reload_is_not_allowed_by_a_person(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    d, path = start(home, daemon_env)
    try:
        t, out = bg(d, workspace, "ph-ask exec -- make deploy; echo rc=$?")
        req = wait_pending(d)[0]
        forbid_deploy(d, path)
        approved = d.cli("approve", req["id"], check=False)
        t.join(timeout=90)
        text = out["result"].stdout
        assert "rc=0" not in text, (
            f"a command forbidden by the config in force was allowed: approve said "
            f"{approved.stdout!r}{approved.stderr!r}; agent: {text!r}")
        # The reload closed it (or the approve found the rule): either way the person reads why.
        assert approved.returncode != 0, approved
        assert "forbid" in approved.stderr or "already" in approved.stderr, approved.stderr
        why = json.loads(d.cli("policy", "why", req["id"], "--json").stdout)
        assert why["state"] == "denied", why
    finally:
        d.stop()


@needs_bwrap
def test_a_grant_does_not_answer_a_pending_request_a_reload_forbade(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    d, path = start(home, daemon_env)
    try:
        t, out = bg(d, workspace,
                    "ph-ask exec -- make build & sleep 0.5; ph-ask exec -- make deploy; echo rc=$?; wait")
        rows = wait_pending(d, 2)
        first = next(r for r in rows if r["subject"] == "make build")
        forbid_deploy(d, path)
        # The person allows "make build" with a wider pattern, for this run.
        decided = json.loads(d.cli("approve", first["id"], "--scope", "run", "--pattern", "make",
                                   "--json").stdout)
        t.join(timeout=90)
        text = out["result"].stdout
        assert "rc=0" not in text, (f"the grant allowed a forbidden command: "
                                    f"also_decided={decided['also_decided']}; agent: {text!r}")
    finally:
        d.stop()
