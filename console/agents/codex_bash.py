"""bash as Codex finds it: the run's bin/bash, first on PATH, in front of the real one.

Codex (0.171.0) runs its hook and every command the model asks for as `bash -c ...`, with the
bash it finds first on PATH, and runs the call whenever the hook ends other than with exit 2
(`codex exec` runs with approval "never", whatever the config says). A process of the run can
kill the hook (same user, same sandbox): a killer left running by an approved test command made
every later command run unasked (review s21). So a command whose parent is Codex runs only
through `ph-guard --claim`: allowed at once when the hook was answered allow for the same
words (agent.sock's claim, once per answer), else asked as any command is. Killing the guard
stops the command, never lets it through. Any other bash (a script's, Claude Code's, a
person's) goes straight to the real one: only /proc/PPID/comm is read, by the shell itself.
"""

from __future__ import annotations


def codex_bash(hook: str, guard: str) -> str:
    """The bin/bash script, for the hook command `hook` and ph-guard at `guard`."""
    return f"""#!/bin/sh
# Written by pilothouse: Codex's commands run once the daemon allowed them (console/agents/codex_bash.py).
real=/usr/bin/bash
[ -x "$real" ] || real=/bin/bash
parent=
read -r parent 2>/dev/null < "/proc/$PPID/comm"
case "$parent" in codex*) ;; *) exec "$real" "$@";; esac  # codex, or a longer build name
if [ "$#" = 2 ] && [ "$1" = -c ] && [ "$2" = {hook} ]; then
  exec "$real" -c "$2"
fi
if [ "$#" = 2 ] && [ "$1" = -c ]; then
  exec {guard} --claim "$2" -- "$real" -c "$2"
fi
echo "pilothouse: Codex started bash in a way it cannot check ($1); refused" >&2
exit 126
"""


# Login shells that mean "no shell": an account with one keeps it.
_NO_SHELL = {"nologin", "false", "sync", "shutdown", "halt", ""}


def guarded_passwd(text: str, guard: str) -> str:
    """The passwd file a sandbox shows: every account's login shell is `guard` (the run's
    bin/bash). Codex runs a login shell that is bash (or zsh) by its path from passwd, not
    the first bash on PATH, so an account with /bin/bash went around the guard (review s27,
    with a hook killed). Lines that are not accounts stay as they are."""
    out = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) == 7 and not line.startswith(("#", "+", "-")) and (
                fields[6].rsplit("/", 1)[-1] not in _NO_SHELL):
            fields[6] = guard
            line = ":".join(fields)
        out.append(line)
    return "\n".join(out) + "\n"
