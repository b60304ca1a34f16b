"""`pilothouse doctor`: what this machine can sandbox and meter, and how to fix what it cannot."""

from __future__ import annotations

import sys
from typing import Any

from console.cli.context import Context, friendly, json_option, pass_ctx
from console.cli.output import echo
from console.cli.parsing import command


def _show_findings(findings: list[dict[str, Any]]) -> None:
    for f in findings:
        echo(f"[{f['status']:7}] {f['name']}: {f['detail']}")
        if f.get("fix") and f["status"] != "ok":
            echo(f"          fix: {f['fix']}")


@command()
@json_option
@pass_ctx
@friendly
def doctor(c: Context) -> None:
    """Check sandboxes, Docker, cgroups, NVML and disk; say how to fix what is missing."""
    from console.sandbox.doctor import run_checks

    findings = [dict(f.__dict__) if hasattr(f, "__dict__") else f for f in run_checks(c.paths)]
    c.emit(findings, _show_findings)
    sys.exit(1 if any(f["status"] == "error" for f in findings) else 0)


COMMANDS = (doctor,)
