"""A process of the run that kills every hook process it sees (review s21): what a test helper
left running by an approved `pytest` could do. Python, so it needs no pkill in an image; the
hook's name is split so that no command line holding this script matches it."""

import shlex

KILL_HOOKS = r"""
import os
mark, me = b"ph-claude-" + b"hook", os.getpid()
while True:
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != me:
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if mark in f.read():
                        os.kill(int(p), 9)
            except OSError:
                pass
"""


def with_hooks_killed(command: list[str]) -> list[str]:
    """`command` started beside the killer, in the sandbox."""
    return ["sh", "-c", f"python3 -c {shlex.quote(KILL_HOOKS)} >/dev/null 2>&1 & exec {shlex.join(command)}"]
