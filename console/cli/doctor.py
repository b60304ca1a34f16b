"""`pilothouse doctor`: what this machine can sandbox and meter, and how to fix what it cannot."""

from __future__ import annotations

import sys
import textwrap
from typing import Any

from console.cli.context import Context, friendly, json_option, pass_ctx
from console.cli.output import echo
from console.cli.parsing import columns, command


def _show_findings(findings: list[dict[str, Any]]) -> None:
    # Folded to the terminal (80 columns over SSH), each line after a finding's first indented
    # under its text, so the status column stays readable.
    width = max(40, columns())
    indent = " " * 10

    def fold(text: str, first: str) -> str:
        return textwrap.fill(text, width, initial_indent=first, subsequent_indent=indent,
                             break_on_hyphens=False, break_long_words=False)

    for f in findings:
        echo(fold(f"{f['name']}: {f['detail']}", f"[{f['status']:7}] "))
        if f.get("fix") and f["status"] != "ok":
            echo(fold(f"fix: {f['fix']}", indent))


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
