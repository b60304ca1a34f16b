"""Attack review s21 of the exec policy: command lines the reader read otherwise than bash, so
that an allow rule or an allow default let through what a forbid or ask rule covers, or a write
the rules ask about. Commands are data only: never run in a shell here.

Shell facts relied on (bash 5.2.15, Debian 12), checked with `touch MARK` in place of the
forbidden program in an empty folder under /tmp:
- bash splits words on space, tab and newline only: `ls >&2<form feed>M` writes a file named
  `2<form feed>M` (a `>&WORD` whose word is not a number is `> WORD 2>&1`), and so do a vertical
  tab, U+00A0, U+2003 and U+0085 after the digit;
- `((...))` is a token of its own: `((1))#<<A` is the arithmetic command and a comment, so the
  next lines run (`printf '((1))#<<A\\ntouch MARK\\nA\\n' | bash` makes MARK);
- an alias is expanded where a command starts once `shopt -s expand_aliases` (or `set -o posix`)
  ran on an earlier line, and its value is read as the start of that command's text: after
  `alias x='(('`, `x 1<<A))` is arithmetic (no here-document: the next line runs); after `alias
  e=eval`, `e touch MARK` runs touch; after `alias x='ls |'`, `x touch MARK` pipes into touch;
  after `alias ls='echo >'`, `ls MARK` writes MARK; bash's BASH_ALIASES array is the same table;
- with `set -o history` a script keeps history: `fc -s ls=touch` runs the last command with ls
  made touch, `history -s 'touch MARK'; fc -s t` runs the line history -s stored, `fc -e
  'sed -i s/ls/touch/'` runs the edited line; with `set -H` (or `set -o histexpand`, `shopt -os
  histexpand`) too, `!:1-$` and `^ls ^` rewrite a later line before bash reads it;
- PS4 is expanded (its `$(...)` run) for each `set -x` trace line, whichever builtin gave it its
  value: `read -r PS4`, `mapfile -t PS4`, `printf -v PS4 '\\x24(touch MARK)'`, `for PS4 in`;
- `BASH_CMDS[ls]=/usr/bin/env; ls touch MARK` runs env (bash's command hash table, as `hash -p`);
- bash drops NUL bytes from a script it reads: `printf 'tou\\0ch MARK\\n' | bash` makes MARK.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from console.daemon.evaluation import PolicyEvaluator
from console.daemon.live_config import LiveConfig
from console.paths import INSIDE_HOME
from console.policy import ExecRules, GrantTable
from tests.policy.test_exec_attacks_s12 import _policy_check

RULES = dict(allow=["git status", "ls", "cat", "echo", "printf", "read", "mapfile", "set",
                    "shopt", "alias", "fc", "history", "true"],
             ask=["curl"], forbid=["rm", "git push"])
ASK_DEFAULT = ExecRules(**RULES)
ALLOW_DEFAULT = ExecRules(**RULES, default="allow")
_CLAUDE = tomllib.loads((Path(__file__).resolve().parents[2] / "console/agents/profiles.toml")
                        .read_text())["profiles"]["claude"]["exec"]
CLAUDE = ExecRules(allow=_CLAUDE["allow"], ask=_CLAUDE["ask"], forbid=_CLAUDE["forbid"])


def _every_path(command: str, default: str, tmp_path: Path) -> list[str]:
    """The decision of the engine, the daemon's evaluator (what ph-ask and ph-claude-hook get)
    and `pilothouse policy check`, for the test profile with that default."""
    config = tmp_path / f"config-{default}.toml"
    config.write_text(f'[profiles.t]\ncommand = ["true"]\n[profiles.t.exec]\ndefault = "{default}"\n'
                      + "".join(f"{k} = {json.dumps(v)}\n" for k, v in RULES.items()))
    rules = ASK_DEFAULT if default == "ask" else ALLOW_DEFAULT
    evaluator = PolicyEvaluator(LiveConfig(config), GrantTable())
    return [rules.evaluate(command).action, evaluator.policy_eval("exec", command, "r1", "t").action,
            _policy_check(config, tmp_path / "home", command)]


# 1. `>&2` followed by a character Python's `\s` calls a blank (form feed, vertical tab,
#    U+00A0, U+2003, U+0085) was read as a dup of fd 2: bash reads the word `2<FF>out`, not a
#    number, and writes that file. The built-in claude profile's allow rule for ls carried it.
WRITES_AFTER_A_DUP = ["ls >&2\fout", "ls >&2\vout", "ls >&1\u00a0out", "ls >&2\u2003out",
                      "cat f >&2\x85out"]


@pytest.mark.parametrize("command", WRITES_AFTER_A_DUP)
def test_a_dup_that_is_a_file_name_to_bash_is_a_write(command: str) -> None:
    assert CLAUDE.evaluate(command).action == "ask", command
    assert ASK_DEFAULT.evaluate(command).action == "ask", command


def test_a_dup_that_is_a_file_name_every_path_asks(tmp_path: Path) -> None:
    assert _every_path("ls >&2\fout", "ask", tmp_path) == ["ask"] * 3


@pytest.mark.parametrize("command", ["ls >&2", "ls 2>&1 | cat", "ls >&2 x", "ls >&-"])
def test_a_real_dup_stays_allowed(command: str) -> None:
    assert CLAUDE.evaluate(command).action == "allow", command


# 2. A `#` right after `((...))` was read as part of that word: bash starts a comment there, so
#    the `<<A` after it is no here-document and the lines the reader took for its body run.
ARITHMETIC_THEN_COMMENT = [
    "((1))#<<A\nrm -rf x\nA",
    "((1))#<<A\ngit push\nA",
    "time -p ((1))#<<A\nrm x\nA",
    "for ((;0;))#<<A\ndo :; done\nrm x\nA",
]


@pytest.mark.parametrize("command", ARITHMETIC_THEN_COMMENT)
def test_a_comment_after_arithmetic_hides_no_command(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command
    assert ASK_DEFAULT.evaluate(command).action == "deny", command


# 3. An alias's value is the start of every later command that uses its name: a keyword (the
#    next `<<` is then no here-document), a wrapper or `eval` (the rest of the line is its
#    command), an operator (the rest is another command), a redirection (the rest is the file
#    it writes). The reader read the value alone, and the use as a plain command `x ...`.
ALIASED = [
    "shopt -s expand_aliases\nalias x='(('\nx 1<<A))\nrm -rf x\nA",
    "shopt -s expand_aliases\nalias x=time\nx ((1<<A))\nrm -rf x\nA",
    "shopt -s expand_aliases\nalias e=eval\ne rm -rf x",
    "shopt -s expand_aliases\nalias x='ls |'\nx rm -rf x",
    "set -o posix\nalias ls='echo >'\nls out",
    "shopt -s expand_aliases\nalias -- e=command\ne git push",
    "shopt -s expand_aliases\nalias -- -x=eval\n-x rm -rf x",
    "shopt -s expand_aliases\nBASH_ALIASES[e]=eval\ne rm -rf x",
    "shopt -s expand_aliases\nBASH_ALIASES+=([e]=eval)\ne rm -rf x",
]


@pytest.mark.parametrize("command", ALIASED)
def test_an_alias_definition_is_never_allowed(command: str) -> None:
    # (or refused: a forbid rule's program named in its words is matched flat, review h154)
    assert ALLOW_DEFAULT.evaluate(command).action in ("ask", "deny"), command
    assert ASK_DEFAULT.evaluate(command).action in ("ask", "deny"), command


@pytest.mark.parametrize("command", ["alias", "alias -p", "alias ls", "shopt -s expand_aliases"])
def test_listing_aliases_stays_allowed(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "allow", command


# 4. History: `fc` runs a command from the history list (changed by `old=new`, or by an editor),
#    and history expansion rewrites later lines before bash reads them. Neither shows its
#    command in its words. A new bash takes it from its own options (`bash -H -o history` reading
#    a here-string) or from SHELLOPTS in its environment (`env SHELLOPTS=history:histexpand
#    bash <<< ...` runs `!:2-$`); BASHOPTS turns on expand_aliases the same way.
THROUGH_HISTORY = [
    "set -o history\nls -rf x\nfc -s ls=rm",
    "set -o history\nhistory -s 'rm -rf x'\nfc -s r",
    "set -o history\nls x\nfc -e 'sed -i s/ls/rm/'",
    "set -o history\nls x\nfc -e - ls=rm",
    "set -H -o history\nls rm -rf x\n!:1-$",
    "set -o histexpand -o history\nls rm -rf x\n^ls ^",
    "set -Ho history\nls rm -rf x\n!:1-$",
    "shopt -os histexpand history\nls rm -rf x\n!:1-$",
    "shopt -s -o histexpand\nls rm -rf x\n!:1-$",
    "bash -H -o history <<< 'ls rm -rf x\n!:1-$'",
    "bash -o histexpand -o history <<A\nls rm -rf x\n!:1-$\nA",
    "env SHELLOPTS=history:histexpand bash <<A\nls rm -rf x\n!:1-$\nA",
    "env BASHOPTS=expand_aliases bash <<A\nls x\nA",
    "bash -i <<< 'ls rm -rf x\n!:1-$'",
    "bash --norc -i <<A\nls rm -rf x\n!:1-$\nA",
]


@pytest.mark.parametrize("command", THROUGH_HISTORY)
def test_history_that_runs_a_command_is_never_allowed(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "ask", command
    assert ASK_DEFAULT.evaluate(command).action == "ask", command


@pytest.mark.parametrize("command", ["fc -l", "fc -ln -5", "set -o history", "set -ex",
                                     "set +H", "history", "shopt -s nullglob"])
def test_history_without_running_stays_allowed(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "allow", command


# 5. A variable bash runs or reads later (PS4 for each `set -x` line, PROMPT_COMMAND, BASH_ENV,
#    PAGER, ...) given its value by a builtin, not by an assignment the reader looks into.
#    Allow rules for read, printf, mapfile, set and true carried the whole line.
VALUED_BY_A_BUILTIN = [
    "read -r PS4 <<< '$(rm -rf x)'; set -x; true",
    "mapfile -t PS4 <<< '$(rm -rf x)'; set -x; true",
    "printf -v PS4 '\\x24(rm -rf x)'; set -x; true",
    "printf -vPS4 '\\x24(rm -rf x)'; set -x; true",
    "read -r -a PS4 <<< '$(rm -rf x)'; set -x; true",
    "read -r PROMPT_COMMAND <<< 'rm -rf x'",
    "read -r GIT_PAGER <<< 'rm -rf x'; export GIT_PAGER",
]


@pytest.mark.parametrize("command", VALUED_BY_A_BUILTIN)
def test_a_variable_that_runs_its_value_given_by_a_builtin_is_asked(command: str, tmp_path: Path) -> None:
    assert _every_path(command, "ask", tmp_path) == ["ask"] * 3, command
    assert ALLOW_DEFAULT.evaluate(command).action == "ask", command


def test_a_for_loop_over_ps4_is_asked() -> None:
    command = "for PS4 in '$(rm -rf x)'; do set -x; true; done"
    assert ALLOW_DEFAULT.evaluate(command).action == "ask", command


@pytest.mark.parametrize("command", ["read -r x", "printf -v x '%s' 1", "mapfile -t lines",
                                     "read -r -p PS4x y"])
def test_builtins_giving_other_variables_stay_allowed(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "allow", command


# 6. BASH_CMDS is bash's command hash table, as `hash -p` fills it: `ls` then runs the path.
HASHED = [
    "BASH_CMDS[ls]=/usr/bin/env; ls rm -rf x",
    "BASH_CMDS[ls]=/usr/bin/git; ls push --force",
    "BASH_CMDS['ls']=/usr/bin/env; ls rm x",
]


@pytest.mark.parametrize("command", HASHED)
def test_a_command_hash_entry_is_asked(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "ask", command


# 7. A NUL byte: bash drops it from a script it reads (`tou<NUL>ch` is touch). The reader kept
#    it in the word, so `r<NUL>m` was no rm.
def test_a_nul_byte_is_read_as_bash_drops_it() -> None:
    assert ALLOW_DEFAULT.evaluate("r\x00m -rf x").action == "deny"
    assert ASK_DEFAULT.evaluate("ls; r\x00m -rf x").action == "deny"
    assert ASK_DEFAULT.evaluate("ls\x00").action == "ask"


# 8. `NAME+=VALUE` gives an unset variable VALUE, in the program's environment too:
#    `GIT_SSH_COMMAND+='touch MARK; false' git ls-remote ssh://x.invalid/y` runs touch. The
#    environment that runs a command was looked for as `NAME=` only.
APPENDED_ENVIRONMENT = ["GIT_SSH_COMMAND+='rm -rf x' git fetch", "PAGER+=x git log",
                        "GIT_CONFIG_KEY_0+=core.pager git log", "EDITOR+=vi git commit"]


@pytest.mark.parametrize("command", APPENDED_ENVIRONMENT)
def test_environment_given_with_plus_equals_is_asked(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "ask", command


# 9. A shell's script file that is its standard input under another name: `//dev/stdin`,
#    `/dev/./stdin`, `/proc/thread-self/fd/0`, `/dev/fd/3` with `3<&0`, `stdin` from /dev; and
#    `--rcfile`/`--init-file` (the file an interactive shell, `bash -ic`, reads first, like
#    BASH_ENV): `echo 'touch MARK' | bash --rcfile /dev/stdin -ic true` runs touch. Only the
#    exact names `-`, `/dev/stdin`, `/dev/fd/0` and `/proc/self/fd/0` were known.
SCRIPT_FROM_INPUT = [
    "echo 'rm -rf x' | bash //dev/stdin",
    "echo 'rm -rf x' | bash /dev/./stdin",
    "echo 'rm -rf x' | bash /proc/thread-self/fd/0",
    "echo 'rm -rf x' | bash /dev/fd/3 3<&0",
    "echo 'rm -rf x' | sh /proc/self/fd/../fd/0",
    "cd /dev && echo 'rm -rf x' | bash stdin",
    "cd /dev/fd && echo 'rm -rf x' | bash 0",
    "echo 'rm -rf x' | . /dev/fd/3 3<&0",
    "echo 'rm -rf x' | source //dev/stdin",
    "echo 'rm -rf x' | bash --rcfile /dev/stdin -ic true",
    "echo 'rm -rf x' | bash --init-file /dev/fd/0 -i -c true",
    "bash --rcfile rc.sh -ic true",
]


@pytest.mark.parametrize("command", SCRIPT_FROM_INPUT)
def test_a_script_read_from_input_by_another_name_is_asked(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "ask", command


@pytest.mark.parametrize("command", ["bash build.sh", "sh ./scripts/fd.sh", ". ./env.sh",
                                     "bash -c 'ls'"])
def test_a_script_file_stays_as_the_default_says(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "allow", command


# 10. A shell given its script as a here-string or here-document had every other reason to ask
#     dropped with the one it answers (a script from standard input): BASH_ENV, ENV, --rcfile,
#     xargs, a BASH_CMDS entry. `BASH_ENV=x bash -c ls` was asked, `BASH_ENV=x bash <<< ls` not.
WITH_A_SCRIPT_GIVEN = [
    "BASH_ENV=./evil.sh bash <<< 'ls'",
    "bash --rcfile x -i <<< ls",
    "ENV=./e sh -i <<< ls",
    "echo rm -rf x | xargs bash <<< ls",
    "BASH_CMDS[ls]=/usr/bin/env bash <<< ls",
    "BASH_ENV=./evil.sh bash <<A\nls\nA",
    "echo 'rm -rf x' | bash /dev/fd/3 3<&0 4<<< ls",
    "echo 'rm -rf x' | bash 4<<< ls",
]


@pytest.mark.parametrize("command", WITH_A_SCRIPT_GIVEN)
def test_a_script_given_leaves_the_other_reasons_to_ask(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "ask", command


@pytest.mark.parametrize("command", ["bash <<< ls", "sh <<A\nls\nA", ". /dev/stdin <<< ls"])
def test_a_script_given_alone_stays_as_the_default_says(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "allow", command


# 11. Arithmetic and prompt expansion where the reader saw plain text: `$[x]` inside double
#     quotes, and `$[x]`, `${a[x]}`, `${x@P}`, `${y:x}` in an unquoted here-document's body.
#     Each evaluates x's value (a subscript in it runs its `$(...)`) or expands it as a prompt
#     (runs it): `printf -v x 'a[\x24(touch MARK)]'; cat <<A` / `${a[x]}` / `A` makes MARK.
EXPANDS_A_VALUE = [
    "printf -v x 'a[\\x24(rm -rf x)]'; echo \"$[x]\"",
    "printf -v x 'a[\\x24(rm -rf x)]'; cat <<A\n$[x]\nA",
    "printf -v x 'a[\\x24(rm -rf x)]'; cat <<A\n${a[x]}\nA",
    "printf -v x '\\x24(rm -rf x)'; cat <<A\n${x@P}\nA",
    "cat <<A\n${y:x}\nA",
    "cat <<A\n${!x}\nA",
]


@pytest.mark.parametrize("command", EXPANDS_A_VALUE)
def test_an_expansion_that_evaluates_a_value_is_not_allowed(command: str, tmp_path: Path) -> None:
    assert _every_path(command, "ask", tmp_path) == ["ask"] * 3, command
    assert ALLOW_DEFAULT.evaluate(command).action == "ask", command


@pytest.mark.parametrize("command", ["cat <<A\n${HOME} $HOME\nA", "cat <<'A'\n${a[x]} $[x]\nA",
                                     "echo '$[x]'", "cat <<A\n\\${a[x]}\nA"])
def test_plain_values_in_a_here_document_stay_allowed(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "allow", command


# 12. Builtins that run a command the reader took for data: `jobs -x CMD ARGS` runs CMD (with
#     job specs replaced), `compgen -C CMD` runs CMD for its completions, and `compgen -W LIST`
#     expands LIST as words (its `$(...)` runs): `compgen -W '$(touch MARK)' x` makes MARK.
RUN_BY_A_BUILTIN = ["jobs -x rm -rf x", "jobs -x -- git push --force",
                    "compgen -C 'rm -rf x' x", "compgen -o default -C 'rm -rf x' x",
                    "compgen -W '$(rm -rf x)' x", "complete -C 'rm -rf x' ls"]


@pytest.mark.parametrize("command", RUN_BY_A_BUILTIN)
def test_a_command_a_builtin_runs_is_checked(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command
    assert ASK_DEFAULT.evaluate(command).action == "deny", command


@pytest.mark.parametrize("command", ["compgen -W '${x@P}' x", "compgen -W \"$(printf x)\" x"])
def test_a_completion_word_list_that_expands_is_asked(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "ask", command


@pytest.mark.parametrize("command", ["jobs", "jobs -l", "compgen -W 'a b' a", "compgen -c gi"])
def test_plain_jobs_and_completions_stay_allowed(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "allow", command


# 13. A relative path is relative to a working folder the line may have changed, or climbs out
#     of it: `cd / && rm -rf *` is `rm -rf /*` (`printf '%s ' *` there prints `bin boot dev ...`),
#     `cd /home && rm -rf agent` is `rm -rf ~` in a sandbox, `rm -rf ../*` from the workspace
#     (/home/agent/workspace) empties home, and enough `../` reach `/` from any folder. `env -C
#     DIR` and `sudo -D DIR` run their command in DIR. docs/policy.md asks `rm -rf /*` and
#     `rm -rf ~/../..`; these spellings of them were allowed under an allow default.
PATH_RULES = ExecRules(allow=["ls"], forbid=["rm -rf /", "rm -rf ~"], default="allow")
RELATIVE_TO_ANOTHER_FOLDER = [
    "cd / && rm -rf *", "cd / && rm -rf ./*", "cd /; rm -rf [a-z]*",
    "cd /home && rm -rf agent", "cd && rm -rf *", "cd ~ && rm -rf *", "pushd / && rm -rf *",
    "cd /; sh -c 'rm -rf *'", "(cd /; rm -rf *)", "env -C / rm -rf *", "env --chdir=/ rm -rf *",
    "sudo -D / rm -rf *", "rm -rf ../*", "rm -rf ../../agent", "rm -rf ../../../../../../../../*",
    # round 2: CDPATH given in the line (`CDPATH=/; cd tmp && pwd` prints /tmp), a climb out
    # of home (`cd ~/..` is /home in a sandbox)
    "CDPATH=/; cd home && rm -rf agent", "export CDPATH=/; cd home; rm -rf agent",
    "cd ~/.. && rm -rf *", "cd ~ && cd .. && rm -rf *", "cd /home/agent && cd .. && rm -rf *",
]


@pytest.mark.parametrize("command", RELATIVE_TO_ANOTHER_FOLDER)
def test_a_relative_path_in_another_folder_may_be_a_rule_path(command: str) -> None:
    decision = PATH_RULES.evaluate(command)
    assert decision.action == "ask", (command, decision)
    assert 'rule "rm -rf' in (decision.provenance.detail or ""), decision


@pytest.mark.parametrize("command", ["rm -rf build", "rm -rf ./build/*", "rm -rf build/../dist",
                                     "cd src && ls ..", "cd / && ls *", "cd src && rm -rf /tmp/x"])
def test_a_path_below_the_working_folder_stays_allowed(command: str) -> None:
    assert PATH_RULES.evaluate(command).action == "allow", command


def test_the_working_folder_rule_stays_the_folder_it_runs_in() -> None:
    rules = ExecRules(allow=["ls"], forbid=["rm -rf ."], default="allow")
    assert rules.evaluate("cd / && rm -rf .").action == "deny"
    assert rules.evaluate("cd / && rm -rf *").action == "ask"
    assert rules.evaluate("cd /tmp && rm -rf build").action == "allow"


# 14. `!(...)` after other words, with extglob on (from an earlier line), is a pattern: every
#     entry but those named (`shopt -s extglob` then `echo !(x)` prints `a b` in a folder of a,
#     b and x), so `rm -rf !(x)` empties the folder and `git push !(x)` may be `git push
#     --force`; where a command starts it runs the first name it matches. The reader read `!`
#     as the keyword and `(x)` as a subshell, wherever it stood.
PATH_AND_GIT = ExecRules(allow=["ls", "shopt", "echo"], forbid=["rm -rf .", "git push --force"],
                         default="allow")


@pytest.mark.parametrize("command", ["shopt -s extglob\nrm -rf !(x)",
                                     "shopt -s extglob\ngit push !(x)",
                                     "shopt -s extglob\necho !(x)", "shopt -s extglob\n!(x)"])
def test_a_negated_extglob_pattern_is_not_allowed(command: str) -> None:
    decision = PATH_AND_GIT.evaluate(command)
    assert decision.action == "ask", (command, decision)


def test_a_bang_subshell_is_still_read_as_one() -> None:
    assert PATH_AND_GIT.evaluate("!(git push --force)").action == "deny"


# 15. `{NAME}>FILE` before the command: bash opens FILE on a new fd and puts its number in NAME
#     (`{fd}>f touch MARK` runs touch, and so does `{a[1]}>f touch MARK`). The reader took
#     `{fd}` for the command's name, so the program it runs was never looked at.
NAMED_FD_FIRST = ["{fd}>f rm -rf x", "{fd}<&0 rm -rf x", "{fd}>&2 git push --force",
                  "{a[1]}>f rm x", "{fd}>/dev/null rm x"]


@pytest.mark.parametrize("command", NAMED_FD_FIRST)
def test_a_named_fd_before_the_command_is_a_redirection(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command


def test_a_named_fd_that_writes_is_a_write() -> None:
    assert ASK_DEFAULT.evaluate("ls {fd}>out").action == "ask"
    assert ASK_DEFAULT.evaluate("ls {fd}>/dev/null").action == "allow"
    assert ASK_DEFAULT.evaluate("ls {fd}<&0").action == "allow"


# 16. Programs that run the command after their options, not known as wrappers: `ssh-agent
#     touch MARK`, `valgrind -q touch MARK`, `npx touch MARK` and `npx -c 'touch MARK'` run
#     touch (checked); systemd-run, run0, pkexec, eatmydata, ltrace, torsocks, proxychains,
#     cgexec, firejail, xvfb-run and faketime do by their manuals, and so does `env -a NAME`
#     (coreutils 9.8's argv0 option, not on this machine's 9.1).
WRAPPED = ["ssh-agent rm -rf x", "ssh-agent -t 5 rm -rf x", "valgrind -q rm -rf x",
           "valgrind --tool=none git push --force", "npx rm -rf x", "npx -y rm -rf x",
           "npx -c 'rm -rf x'", "npx --call='rm -rf x'", "npm exec -c 'rm -rf x'",
           "systemd-run --user -u job rm -rf x", "run0 -u root rm -rf x", "pkexec rm -rf x",
           "eatmydata rm -rf x", "ltrace -o log rm -rf x", "torsocks rm -rf x",
           "proxychains4 -q rm -rf x", "cgexec -g cpu:grp rm -rf x", "firejail --quiet rm -rf x",
           "xvfb-run -a rm -rf x", "faketime '2020-01-01' rm -rf x", "env -a name rm -rf x"]


@pytest.mark.parametrize("command", WRAPPED)
def test_a_wrapped_command_is_seen(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command


# 17. A glob over the home folder's own path: `rm -rf /home/*` removes /home/agent (a sandbox's
#     HOME), and so do `/h*/agent` and `/home/ag?nt`. A glob was compared with a `~` rule only
#     when it was written from `~` (`~/*`).
@pytest.mark.parametrize("command", [f"rm -rf {INSIDE_HOME.rsplit('/', 1)[0]}/*",
                                     "rm -rf /h*/agent", "rm -rf /home/ag?nt", "rm -rf /*/agent"])
def test_a_glob_over_the_home_folder_path_is_asked(command: str) -> None:
    decision = ExecRules(allow=["ls"], forbid=["rm -rf ~"], default="allow").evaluate(command)
    assert decision.action == "ask", (command, decision)
    assert 'rule "rm -rf ~"' in (decision.provenance.detail or ""), decision


def test_a_glob_beside_the_home_folder_stays_allowed() -> None:
    rules = ExecRules(allow=["ls"], forbid=["rm -rf ~"], default="allow")
    assert rules.evaluate("rm -rf /home/agentx/*").action == "allow"


# 18. bash reads the `-` after `>&` or `<&` as a token of its own (closing the fd), and what
#     follows it as the next word: `bash -xc 'true >&--rf /'` traces `true -rf /`. The reader
#     took `--rf` for the file the redirection writes, so `rm >&--rf /` was `rm /` to the rules.
CLOSE_THEN_WORD = ["rm >&--rf /", "rm 2>&--rf /", "rm <&--rf /", "git push >&--force",
                   "git push 1>&--f",
                   # round 2: blanks between: `bash -xc 'true >& --force'` traces `true -force`
                   "rm >& --rf /", "rm 2>&\t--rf /", "rm <& --rf /"]


@pytest.mark.parametrize("command", CLOSE_THEN_WORD)
def test_a_word_right_after_a_closed_fd_is_an_argument(command: str) -> None:
    rules = ExecRules(allow=["ls"], forbid=["rm -rf /", "git push --force"], default="allow")
    assert rules.evaluate(command).action == "deny", command


def test_a_closed_fd_writes_nothing() -> None:
    assert ASK_DEFAULT.evaluate("ls >&-").action == "allow"
    assert ASK_DEFAULT.evaluate("ls >&-x").action == "allow"  # `ls x` with stdout closed


# 19. A keyword written against `((` (`if((`, `while((`, `{((`): `(` ends the word, so bash reads
#     the keyword and then the arithmetic command, whose `<<` is a shift (`printf
#     'if((1<<A));then :;fi\ntouch MARK\nA\n' | bash` makes MARK). The reader took the first
#     `(` for a subshell, and the `<<A` after it for a here-document hiding the next lines.
KEYWORD_AGAINST_ARITHMETIC = [
    "{((1<<A));}\nrm -rf x\nA",
    "{((1<<A))\n}\nrm -rf x\nA",
    "if((1<<A));then :;fi\nrm -rf x\nA",
    "while((0<<A));do :;done\ngit push\nA",
    "until((1<<A));do :;done\nrm x\nA",
    "if :;then((1<<A));fi\nrm x\nA",
    "time((1<<A))\nrm x\nA",
]


@pytest.mark.parametrize("command", KEYWORD_AGAINST_ARITHMETIC)
def test_a_keyword_against_arithmetic_hides_no_command(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command
    assert ASK_DEFAULT.evaluate(command).action == "deny", command
