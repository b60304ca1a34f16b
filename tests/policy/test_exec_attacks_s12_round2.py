"""A second attack review of the exec policy after 117a029 (session 12, round 2): inputs the
round-one fixes still let through, or that make the reader slow. Commands are data only: never
run in a shell.

Shell facts relied on (bash 5.2, GNU coreutils 9.1, util-linux 2.38), checked with a harmless
printf where a check was possible:
- a glob after dashes matches a file named like a long option: `--p*` matches `--pre=sh`;
- `sh -` reads its script from standard input (bash: "a single - is equivalent to --"), and so
  does `bash /dev/stdin` (or /dev/fd/0, /proc/self/fd/0);
- GNU parallel, like xargs, appends the arguments it reads (or those after `:::`) to its command;
- `env --split='printf [%s] a b'` and `env --spl '...'` are `env -S` (getopt abbreviations), and
  options inside the -S string are env's own: `env -S '-u X printf [%s] a'` prints `[a]`;
- nsenter's namespace options take an attached optional value (`-m/proc/1/ns/mnt`), -W takes a
  value; `x86_64` and `i386` are setarch (`setarch -R x86_64 printf [%s] a` prints `[a]`);
  `runcon -c CONTEXT COMMAND`; chrt's -T/-P/-D and unshare's --map-user, --map-group,
  --propagation, --setgroups take a value;
- bash's mapfile reads options with getopt: `-tC STRING` is -t and -C STRING;
- `PS4=(a b)` sets PS4 to `a` (element 0), expanded for each `-x` trace line;
  `BASH_FUNC_ls%%=() { ...; }` in the environment (set by env: it is no shell assignment)
  defines the function ls in bash;
- with `shopt -s extglob` on an earlier line, `printf [%s] {/,@(x)}` prints `[/][@(x)]`;
- git runs core.sshCommand, core.pager and core.fsmonitor values (and GIT_SSH_COMMAND) with sh.
"""

from __future__ import annotations

import pytest

from tests.policy.test_exec_attacks_s12 import (  # noqa: F401  (fixtures)
    ALLOW_DEFAULT,
    ASK_DEFAULT,
    _helper,
    _policy_check,
    agent_sock,
    config_file,
)


# 1. A glob after more than one dash, or after dashes and letters, still matches a file named
#    like an option: `rg x --p*` runs `rg x --pre=sh` when the agent made that file.
#    shellwords._Splitter._may_glob_an_option only looks at "" and "-" before the glob.
@pytest.mark.parametrize("command", [
    "rg x --p*",
    "rg x --pr?=sh",
    'rg x "-"-*',
    "rg x -\\-*",
    "sort f --o*",                    # --output=/tmp/x
    "sort f --ou?put=/tmp/x",
])
def test_glob_after_dashes_is_not_allowed(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "ask", command


# 2. A shell reading its script from standard input, spelled so that unwrap._reads_stdin takes
#    it for a script file: `-` (the end of options), or a file that is standard input.
@pytest.mark.parametrize("command", [
    "echo 'git push --force' | sh -",
    "echo 'git push --force' | bash /dev/stdin",
    "echo 'git push --force' | bash -- /dev/stdin",
    "echo 'git push --force' | bash /dev/fd/0",
    "echo 'git push --force' | bash /proc/self/fd/0",
    "echo 'git push --force' | . /dev/fd/0",
    "echo 'git push --force' | source /proc/self/fd/0",
    "echo 'git push --force' | sudo -s",          # a shell with no command reads its input
    "echo 'git push --force' | su",
])
def test_shell_reading_stdin_in_other_spellings_is_never_allowed(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action != "allow", command


# 3. GNU parallel appends words read from its input, or given after `:::`, as xargs does.
@pytest.mark.parametrize("command", [
    "echo / | parallel rm -rf",
    "parallel rm -rf ::: /",
    "parallel git push ::: --force",
])
def test_parallel_is_never_allowed(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action != "allow", command


# 4. env -S spelled as an abbreviation, and env options inside the -S string (env reads them
#    as its own): unwrap._skip_wrapper misses both, and the rule never sees git push --force.
@pytest.mark.parametrize("command", [
    "env --split='git push --force'",
    "env --spl 'git push --force'",
    "env -S '-u X git push --force'",
    "env -S '-C / git push --force'",
    "env -S '-i rm -rf /'",
])
def test_env_split_string_spellings_forbid(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command
    assert ASK_DEFAULT.evaluate(command).action == "deny", command


# 5. Wrapper option tables (unwrap._WRAPPER_ARGS and friends) that hide the command.
@pytest.mark.parametrize("command", [
    "nsenter -m/proc/1/ns/mnt git push --force",    # the "t" in "mnt" is read as -t PID
    "nsenter -W / git push --force",
    "nsenter --wdns / git push --force",
    "x86_64 git push --force",                      # setarch under another name
    "i386 rm -rf /",
    "setarch -R x86_64 git push --force",
    "runcon -c foo git push --force",               # runcon [-c] CONTEXT COMMAND
    "chrt -T 10 -P 10 -D 10 --deadline 0 git push --force",
    "unshare --map-user 0 git push --force",
    "unshare --map-group 0 rm -rf /",
    "unshare --propagation private git push --force",
    "unshare --setgroups allow git push --force",
])
def test_wrapper_options_forbid(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command


# 6. mapfile -C in a cluster: unwrap._inner_commands only reads `-C STRING` and `-CSTRING`.
@pytest.mark.parametrize("command", [
    "mapfile -tC 'git push --force' -c 1 a < /etc/hostname",
    "readarray -tC'rm -rf /' -c 1 a < /etc/hostname",
])
def test_mapfile_callback_in_a_cluster_forbids(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command


# 7. PS4 or PROMPT_COMMAND set as an array (the reader takes `(` for a subshell and the
#    quoted element for a plain word), and a function imported from the environment.
@pytest.mark.parametrize("command", [
    "PS4=('$(git push --force)'); set -x; ls",
    "declare -a PS4=('$(rm -rf /)'); set -x; ls",
    "env 'BASH_FUNC_ls%%=() { rm -rf /; }' bash -c ls",
    "env 'BASH_FUNC_git%%=() { rm -rf /; }' bash -c 'git status'",
])
def test_values_the_shell_runs_later_are_never_allowed(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action != "allow", command


# 8. A brace expansion holding an extglob group: shellscan.word_end (and the splitter) stop
#    at "(", so the closing brace is never seen; bash runs `rm -rf / @(x)`.
@pytest.mark.parametrize("command", [
    "shopt -s extglob\nrm -rf {/,@(x)}",
    "shopt -s extglob\nrm -rf {x,+(y),/}",
])
def test_brace_with_extglob_group_is_never_allowed(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action != "allow", command


# 9. The brace check reads to the word's end for every "{" (quadratic), and $'...' and eval
#    read the line again at each level: a 4 KiB subject (the daemon's limit) holds the daemon's
#    event loop for seconds (agent_socket calls policy_eval in the loop). A linear reader takes
#    milliseconds.
# (The 4 KiB line of braces is in test_reader_work_bounded.py: counted there, not timed.)


# 10. Values git runs as shell commands (the neighbour of `git -c alias.x=...`, already opaque).
@pytest.mark.parametrize("command", [
    "git -c core.sshCommand='rm -rf /' fetch",
    "git -c core.pager='git push --force' log",
    "git -c core.fsmonitor='rm -rf /' status",
    "GIT_SSH_COMMAND='rm -rf /' git fetch",
])
def test_git_values_that_run_commands_are_never_allowed(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action != "allow", command


# 11. Common wrappers and shells still missing from unwrap's tables.
@pytest.mark.parametrize("command", [
    "fakeroot git push --force",
    "fakeroot -- rm -rf /",
    "toybox sh -c 'git push --force'",
    "dbus-run-session -- git push --force",
])
def test_more_wrappers_forbid(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command


# Every path agrees on these findings: test_exec_attacks_s12.ACROSS_PATHS names them.
