"""What the console says was decided: on what, for which run, and how far."""

from __future__ import annotations

from typing import Any

from console.text import shown
from widgets.format import printable


def scope_words(scope: str, req: dict[str, Any]) -> str:
    if scope.endswith("m") and scope[:-1].isdigit():
        return f"for {int(scope[:-1])} minutes"
    return {"once": "once", "run": "this run", "global": "everywhere",
            "profile": f"profile {printable(req.get('profile'))} (rule saved)"}.get(scope, scope)


def decision_toast(req: dict[str, Any], result: dict[str, Any], scope: str) -> str:
    """What was decided, on what, for which run and how far: "Allowed `git push` for run
    9z73, this run"."""
    verb = "Allowed" if result.get("allow") else "Denied"
    # A destination whole (its end decides which host: review h166), a command cut with a mark.
    subject = shown(req.get("subject") or req.get("id"),
                    None if req.get("kind") == "network" else 80)
    return f"{verb} `{subject}` for run {printable(req.get('run_id'))}, {scope_words(scope, req)}"
