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
    return _guard_script("bash", hook, guard, "/bin/sh",
                         'real=/usr/bin/bash\n[ -x "$real" ] || real=/bin/bash')


# Codex starts `exec_command`'s `shell: "/bin/sh"` (and any shell it does not know) by the path
# /bin/sh or /usr/bin/sh, never through PATH: with the hook killed too, that command ran
# unasked (s32). Under bubblewrap the file the system's sh resolves to is covered by SH_GUARD,
# and the real one is bound at REAL_SH for the guard (and for everything else) to run.
REAL_SH = "real/sh"  # in the run folder: the mount point of the system's real sh
# In the run folder: the file ph-guard holds open (its descriptor's number in PILOTHOUSE_CLAIMED)
# in a command it let through after a claim. bash runs a `-c` string's last command in its own
# process, so `bash x.sh` or `sh -c X` asked and claimed arrives at a guard with Codex its parent:
# that guard passes it, since Codex itself never holds the file open.
CLAIMED = "claimed"
SH_GUARD = "bin/sh-guard"  # in the run folder: what /bin/sh is in the sandbox


def codex_sh(hook: str, guard: str, real: str) -> str:
    """The script over the sandbox's /bin/sh: `real` is where the real sh is bound. Our own
    scripts under `guard`'s folder (read-only, ph-guard's wrapper in a container) run as they
    are, since a guard started by Codex runs them with Codex still its parent."""
    ours = guard.rsplit("/", 1)[0] + "/*"
    return _guard_script("sh", hook, guard, real, f"real={real}",
                         f'case "$1" in *..*) ;; {ours}) exec "$real" "$@";; esac  # our own, read-only')


def _guard_script(name: str, hook: str, guard: str, interpreter: str, real: str,
                  ours: str = "") -> str:
    mark = guard.rsplit("/", 2)[0] + "/" + CLAIMED  # /run/pilothouse/claimed
    return f"""#!{interpreter}
# Written by pilothouse: Codex's commands run once the daemon allowed them (console/agents/codex_bash.py).
{real}
parent=
read -r parent 2>/dev/null < "/proc/$PPID/comm"
case "$parent" in codex*) ;; *) exec "$real" "$@";; esac  # codex, or a longer build name
case "$PILOTHOUSE_CLAIMED" in ''|*[!0-9]*) ;; *)  # a claimed command that execs a shell (`sh x.sh`)
  [ "$(readlink "/proc/$$/fd/$PILOTHOUSE_CLAIMED")" = {mark} ] && exec "$real" "$@";;
esac
{ours}
if [ "$#" = 2 ] && [ "$1" = -c ] && [ "$2" = {hook} ]; then
  exec "$real" -c "$2"
fi
if [ "$#" = 2 ] && [ "$1" = -c ]; then
  exec {guard} --claim "$2" -- "$real" -c "$2"
fi
echo "pilothouse: Codex started {name} in a way it cannot check ($1); refused" >&2
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
