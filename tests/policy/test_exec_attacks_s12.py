"""A third attack review of the exec policy (session 12): commands a forbid or ask rule should
catch, or an allow rule should not carry, that the reader lets through today, and a place where
two paths disagree. Commands are data only: never run in a shell.

Shell facts relied on (bash 5.2, GNU coreutils 9.1, util-linux, sudo >= 1.9.3), checked with a
harmless printf where a check was possible:
- brace expansion skips quoted and escaped braces: `printf '[%s]' {'}',-o}` prints `[}][-o]`;
- `env -S` reads `\\_` as a word separator and expands `${VAR}`: `env -S 'printf [%s]\\_a\\_b'`
  prints `[a][b]`;
- xargs appends the words it reads to its command; `find -exec ... {}` puts each found path in
  place of `{}` (the start path itself first);
- a shell with no -c and no script file reads its script from standard input (a pipe too);
- `trap STRING SIG` and `mapfile -C STRING` evaluate STRING as a command; `hash -p PATH NAME`
  makes NAME run PATH; bash expands $PS4 (command substitutions too) for `-x` traces.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.daemon.agent_socket import start_agent_server
from console.daemon.evaluation import PolicyEvaluator
from console.daemon.inbox import Inbox
from console.daemon.live_config import LiveConfig
from console.policy import ExecRules, GrantTable
from console.sandbox import inside
from tests.approvals.conftest import Recorder
from tests.conftest import BIN

RULES = dict(allow=["git status", "ls", "cat", "echo", "sort", "rg"], ask=["git push"],
             forbid=["rm -rf /", "git push --force"])
ASK_DEFAULT = ExecRules(**RULES)
ALLOW_DEFAULT = ExecRules(**RULES, default="allow")
INSIDE = Path(inside.__file__).resolve()


# 1. Brace expansion with a quoted or escaped `}` before the comma: the reader's brace check
#    (shellwords._Splitter.split) ends the brace at the first `}` it finds, quoted or not, sees
#    no comma, and does not mark the word opaque. bash expands it to `} -o`: sort writes /tmp/x.
QUOTED_BRACE_ALLOW = [
    "sort {'}',-o} /tmp/x f",
    "sort {\\},-o} /tmp/x f",
    'sort {"}",-o} /tmp/x f',
]
QUOTED_BRACE_FORBID = [
    "rm -rf {'}',/}",             # bash: rm -rf } /
    "rm -rf {\\},/}",             # bash: rm -rf } / (escaped brace)
]


@pytest.mark.parametrize("command", QUOTED_BRACE_ALLOW)
def test_brace_with_quoted_close_is_not_allowed(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "ask", command


@pytest.mark.parametrize("command", QUOTED_BRACE_FORBID)
def test_brace_with_quoted_close_is_asked_under_allow_default(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "ask", command


# 2. A glob at the start of an argument may expand to an option: a file the agent named
#    `--pre=sh` in the workspace turns `rg x *` into `rg x --pre=sh ...` (runs every file as a
#    shell script). docs: options that run a program are never carried by an allow rule that
#    does not name them; words made by an expansion "may be an option".
@pytest.mark.parametrize("command", ["rg x *", "rg x ?*", "sort [-]* f"])
def test_glob_that_can_expand_to_an_option_is_not_allowed(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "ask", command


# 3. xargs completes its command with words read from standard input, and find -exec puts
#    each path in place of `{}`: the words the rules see are not the words that run.
APPENDED = [
    "echo / | xargs rm -rf",                          # runs rm -rf /
    "echo push --force | xargs git",                  # runs git push --force
    "find / -maxdepth 0 -exec rm -rf {} ;",           # the first path is / itself
    "find /usr/bin -name git -exec {} push --force ;",  # {} is the command: git push --force
]


@pytest.mark.parametrize("command", APPENDED)
def test_words_completed_at_run_time_are_never_allowed(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action != "allow", command


# 4. env -S has its own escapes (unwrap._skip_wrapper reads its string with shlex): `\_`
#    separates words, ${VAR} is expanded from the environment.
def test_env_split_string_underscore_separator_is_forbidden() -> None:
    assert ASK_DEFAULT.evaluate("env -S 'git\\_push\\_--force'").action == "deny"
    assert ALLOW_DEFAULT.evaluate("env -S 'rm\\_-rf\\_/'").action == "deny"


def test_env_split_string_variable_is_never_allowed() -> None:
    assert ALLOW_DEFAULT.evaluate("R=/ env -S 'rm -rf ${R}'").action != "allow"


# 5. Shells and wrappers missing from unwrap._SHELLS / _WRAPPER_ARGS (sudo's -R DIR is
#    --chroot, which takes an argument).
SHELLS = ["rbash -c 'git push --force'", "ash -c 'git push --force'",
          "fish -c 'git push --force'", "tcsh -c 'git push --force'",
          "csh -c 'rm -rf /'", "sg wheel -c 'git push --force'"]
WRAPPERS = ["setpriv --reuid=0 git push --force", "prlimit --nofile=10 git push --force",
            "nsenter -t 1 -m git push --force", "setarch x86_64 git push --force",
            "linux64 rm -rf /", "runcon -t foo git push --force",
            "numactl -N 0 git push --force", "sudo -R / git push --force"]


@pytest.mark.parametrize("command", SHELLS + WRAPPERS)
def test_more_shells_and_wrappers_forbid(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "deny", command
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command


# 6. Builtins that run a string later, as eval does.
@pytest.mark.parametrize("command", [
    "trap 'git push --force' EXIT",
    "trap -- 'rm -rf /' EXIT",
    "mapfile -C 'git push --force' -c 1 a < /etc/hostname",
    "readarray -C 'rm -rf /' -c 1 a < /etc/hostname",
])
def test_builtins_that_evaluate_a_string_forbid(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command


@pytest.mark.parametrize("command", [
    "hash -p /usr/bin/git ls; ls push --force",       # ls now runs git
    "PS4='$(git push --force)' bash -xc ls",          # the trace prompt runs the substitution
])
def test_commands_renamed_or_run_by_the_shell_are_never_allowed(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action != "allow", command


# 7. A shell reading its script from a pipe: the reader checks `bash <<< '...'` but not
#    `... | bash`.
@pytest.mark.parametrize("command", [
    "echo 'git push --force' | sh",
    "cat <<< 'rm -rf /' | bash",
    "printf 'git push --force' | bash -s",
])
def test_script_piped_into_a_shell_is_never_allowed(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action != "allow", command


# 8. Every path reaches the same decision. Profile "t" with default "allow": each command below
#    must be denied (forbid) whichever path asks; today each path allows it.
CONFIG = f"""\
[profiles.t]
command = ["true"]
[profiles.t.exec]
default = "allow"
allow = {json.dumps(RULES["allow"])}
ask = {json.dumps(RULES["ask"])}
forbid = {json.dumps(RULES["forbid"])}
"""
ACROSS_PATHS = [
    "env -S 'git\\_push\\_--force'",
    "rbash -c 'git push --force'",
    "setpriv --reuid=0 git push --force",
    "trap 'git push --force' EXIT",
    # round 2: env's --split abbreviation, setarch by another name
    "env --split='git push --force'",
    "x86_64 git push --force",
    # round 3: `!` and a subshell, a substitution in an array
    "!(git push --force)",
    "x=( $(git push --force) )",
]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


def _policy_check(config: Path, home: Path, *words: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    env["PILOTHOUSE_HOME"] = str(home)
    out = subprocess.run(
        [str(BIN / "pilothouse"), "--config", str(config), "policy", "check", "--json", "t", "--",
         *words], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["decision"]


@pytest.fixture
async def agent_sock(config_file: Path) -> AsyncIterator[Path]:
    """A run's agent.sock for profile "t", deciding through the daemon's PolicyEvaluator."""
    d = Path(tempfile.mkdtemp(prefix="ph-s12-", dir="/tmp"))
    grants = GrantTable()
    inbox = Inbox(Recorder(), timeout_s=2.0, grants=grants)  # an "ask" is denied after 2 s
    evaluator = PolicyEvaluator(LiveConfig(config_file), grants)
    server = await start_agent_server(d / "agent.sock", "r1", "t", inbox, evaluator.policy_eval)
    try:
        yield d / "agent.sock"
    finally:
        server.close()
        await server.wait_closed()
        shutil.rmtree(d, ignore_errors=True)


async def _helper(sock: Path, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    env = {**os.environ, "PILOTHOUSE_AGENT_SOCK": str(sock)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(INSIDE), *args, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("command", ACROSS_PATHS)
def test_engine_path_denies(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command


@pytest.mark.parametrize("command", ACROSS_PATHS)
def test_policy_check_cli_denies(command: str, config_file: Path, tmp_path: Path) -> None:
    assert _policy_check(config_file, tmp_path / "home", command) == "deny", command


@pytest.mark.parametrize("command", ACROSS_PATHS)
def test_daemon_evaluation_denies(command: str, config_file: Path) -> None:
    evaluator = PolicyEvaluator(LiveConfig(config_file), GrantTable())
    assert evaluator.policy_eval("exec", command, "r1", "t").action == "deny", command


@pytest.mark.parametrize("command", ACROSS_PATHS)
async def test_ph_ask_exec_denies(command: str, agent_sock: Path) -> None:
    rc, _, err = await _helper(agent_sock, "ph-ask", "exec", "--", command)
    assert rc == 1 and "forbid" in err, (command, rc, err)


@pytest.mark.parametrize("command", ACROSS_PATHS)
async def test_claude_and_codex_hook_denies(command: str, agent_sock: Path) -> None:
    event = {"tool_name": "Bash", "tool_input": {"command": command}, "cwd": "/workspace",
             "session_id": "s12", "hook_event_name": "PreToolUse"}
    rc, out, _ = await _helper(agent_sock, "ph-claude-hook", stdin=json.dumps(event).encode())
    got = json.loads(out)["hookSpecificOutput"]
    assert rc == 0 and got["permissionDecision"] == "deny", (command, got)
    assert "forbidden by rule" in got["permissionDecisionReason"], (command, got)


# 9. `pilothouse policy check PROFILE -- WORDS...` joins several words with plain spaces, while
#    `ph-ask exec -- WORDS...` (and ph-guard) quote each word: the same words get two decisions.
#    `policy check t -- sh -c 'git push --force'` reads "sh -c git push --force" and says
#    allow; the agent's `ph-ask exec -- sh -c 'git push --force'` is denied.
MULTI_WORD = [
    ["sh", "-c", "git push --force"],
    ["sudo", "sh", "-c", "rm -rf /"],
]


@pytest.mark.parametrize("words", MULTI_WORD, ids=lambda w: shlex.join(w))
def test_policy_check_reads_several_words_as_ph_ask_does(words: list[str], config_file: Path,
                                                         tmp_path: Path) -> None:
    as_ph_ask = inside.command_line(words)
    want = ALLOW_DEFAULT.evaluate(as_ph_ask).action
    assert want == "deny"
    assert _policy_check(config_file, tmp_path / "home", *words) == want, words


@pytest.mark.parametrize("words", MULTI_WORD, ids=lambda w: shlex.join(w))
async def test_ph_ask_exec_several_words_denies(words: list[str], agent_sock: Path) -> None:
    # Guard (passes today): the agent's own path already reads the words as one command each.
    rc, _, err = await _helper(agent_sock, "ph-ask", "exec", "--", *words)
    assert rc == 1 and "forbid" in err, (words, rc, err)
