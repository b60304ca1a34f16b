"""Attack review s16 of the exec policy: commands whose decision is wrong by docs/policy.md.
Commands are data only: never run in a shell here.

Shell facts relied on (bash 5.2.15, dash 0.5, git 2.39), checked on harmless stand-ins in an
empty temporary directory (`echo RAN`, `touch FILE`, a local repository and a hook that touches
a file):
- `(( x = 1 << 2 ))` and `for ((i=0; i<<2; i++))` are arithmetic in bash: `<<` is a shift, not
  a here-document, so the next line runs (`printf '(( x = 1 << 2 ))\\necho RAN\\n' | bash`
  prints RAN). dash reads `((` as two subshells and the next line as a here-document body;
- at the start of a command `a[1<<2]=3` (and `a[1<<2]` alone) is one word in bash: its
  subscript is read to the `]`, and the next line runs (`echo a[1<<2]=3` is a here-document);
- bash evaluates a variable's value as arithmetic where a bare name stands in an arithmetic
  context: `x='a[$(echo RAN >&2)]'; (( x ))` prints RAN (so do `let x`, `$((x))`, `${a[x]}`);
- `git clone -c core.hooksPath=DIR src dst` runs DIR/post-checkout; `git clone --template=DIR`
  runs DIR/hooks/post-checkout; `git clone -u 'touch F; git-upload-pack' file://...` runs
  touch; `git rebase -x CMD HEAD~1` runs CMD (the short spelling of --exec);
- `git reset --ha` and `git reset --har` are `git reset --hard` (git takes any unambiguous
  abbreviation of a long option): "HEAD is now at ...";
- `rm -rf ~/`, `rm -rf ~/.` and `rm -rf ~//` name the same folder as `rm -rf ~`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from console.daemon.evaluation import PolicyEvaluator
from console.daemon.live_config import LiveConfig
from console.policy import ExecRules, GrantTable
from tests.policy.test_exec_attacks_s12 import (  # noqa: F401  (fixtures)
    ALLOW_DEFAULT,
    ASK_DEFAULT,
    _policy_check,
    config_file,
)

_PROFILES = tomllib.loads(
    (Path(__file__).resolve().parents[2] / "console/agents/profiles.toml").read_text())["profiles"]
_CLAUDE = _PROFILES["claude"]["exec"]
CLAUDE = ExecRules(allow=_CLAUDE["allow"], ask=_CLAUDE["ask"], forbid=_CLAUDE["forbid"])
CLAUDE_ALLOW_DEFAULT = ExecRules(allow=_CLAUDE["allow"], ask=_CLAUDE["ask"],
                                 forbid=_CLAUDE["forbid"], default="allow")


# 1. `<<` inside an arithmetic command (or an array subscript at the start of a command) is
#    read as a here-document, so the lines after it are taken for its body and never checked:
#    bash runs them. The forbid rule is missed, and an allow default allows the line.
ARITH_HIDES = [
    "(( x = 1 << 2 ))\ngit push --force",
    "((x<<2))\nrm -rf /",
    "for ((i=0; i<<2; i++)); do :; done\ngit push --force",
    "if ((1<<2)); then :; fi\nrm -rf /",
    "a[1<<2]=3\ngit push --force",
    "a[1<<2]+=3 true\nrm -rf /",
]


@pytest.mark.parametrize("command", ARITH_HIDES)
def test_shift_in_arithmetic_is_not_a_here_document(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "deny", command
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command


@pytest.mark.parametrize("command", ARITH_HIDES[:2])
def test_shift_in_arithmetic_every_path_denies(command: str, config_file: Path,  # noqa: F811
                                               tmp_path: Path) -> None:
    evaluator = PolicyEvaluator(LiveConfig(config_file), GrantTable())
    assert evaluator.policy_eval("exec", command, "r1", "t").action == "deny", command
    assert _policy_check(config_file, tmp_path / "home", command) == "deny", command


def test_dash_reading_of_double_parenthesis_is_still_checked() -> None:
    # dash runs `((rm -rf /))` as two subshells: the reading with more commands is kept.
    assert ALLOW_DEFAULT.evaluate("((rm -rf /))").action == "deny"


# 2. A value bash evaluates later as arithmetic runs the substitution in its subscript: the
#    assignment's single-quoted value is never looked at.
INDIRECT = [
    "x='a[$(git push --force)]'; (( x ))",
    "x='a[$(rm -rf /)]'; let x",
    "x='a[$(git push --force)]' y=1; declare -i z=x",
]


@pytest.mark.parametrize("command", INDIRECT)
def test_arithmetic_through_a_variable_is_checked(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command
    assert ASK_DEFAULT.evaluate(command).action == "deny", command


# 3. Options of git subcommands that run a program, in the spellings the risky list misses:
#    an allow rule for the subcommand carries them.
GIT_RUNS = ExecRules(allow=["git clone", "git rebase"])


@pytest.mark.parametrize("command", [
    "git clone -c core.hooksPath=/tmp/h src dst",
    "git clone -ccore.hooksPath=/tmp/h src dst",
    "git clone --template=/tmp/t src dst",
    "git clone --templ /tmp/t src dst",
    "git clone -u 'touch F; git-upload-pack' file:///tmp/src dst",
    "git rebase -x 'sh evil.sh' HEAD~1",
    "git rebase -ix 'sh evil.sh' HEAD~1",
])
def test_git_subcommand_options_that_run_a_program_are_not_carried(command: str) -> None:
    assert GIT_RUNS.evaluate(command).action == "ask", command


def test_git_template_config_is_never_allowed() -> None:
    command = "git -c init.templateDir=/tmp/t clone src dst"
    assert ExecRules(allow=["git"], default="allow").evaluate(command).action == "ask"


def test_git_subcommands_stay_allowed_without_them() -> None:
    assert GIT_RUNS.evaluate("git clone -q --depth 1 src dst").action == "allow"
    assert GIT_RUNS.evaluate("git rebase -i HEAD~1").action == "allow"


# 4. The built-in forbid rule `git reset --hard` misses git's abbreviations of --hard.
# `git reset --h` too: git takes a one-letter prefix of a long option (checked with git 2.39:
# it resets hard), and the shape read it as the short flag -h (review s16, after the merge).
@pytest.mark.parametrize("command", ["git reset --ha", "git reset --har HEAD~1",
                                     "git -C . reset --ha HEAD", "git reset --h",
                                     "git reset --h HEAD~1"])
def test_abbreviated_long_flag_is_forbidden(command: str) -> None:
    assert CLAUDE.evaluate(command).action == "deny", command
    assert CLAUDE_ALLOW_DEFAULT.evaluate(command).action == "deny", command


# 5. The built-in forbid rule `rm -rf ~` misses other spellings of the home folder.
@pytest.mark.parametrize("command", ["rm -rf ~/", "rm -rf ~//", "rm -rf ~/.", "rm -fr ~/x/.."])
def test_home_spellings_are_forbidden(command: str) -> None:
    assert CLAUDE_ALLOW_DEFAULT.evaluate(command).action == "deny", command


def test_home_parent_is_not_home() -> None:
    # `~/..` is the folder above home: not what `rm -rf ~` names, so not denied by it. It is
    # `/` where HOME is one level down (root's /root), so it is asked (session 19).
    decision = CLAUDE_ALLOW_DEFAULT.evaluate("rm -rf ~/..")
    assert decision.action == "ask", decision
    assert 'rule "rm -rf /"' in (decision.provenance.detail or ""), decision


def test_reading_double_parentheses_stays_bounded(monkeypatch) -> None:
    # Guard for fix 1: each `((` that is not arithmetic is read on to the end of the line; past
    # a few such misses the line is not read at all (asked), never read in square time.
    from console.policy import shellscan, shellwords
    calls = 0
    real = shellscan.close_paren

    def counted(s: str, i: int, **kw: bool) -> int:
        nonlocal calls
        calls += 1
        return real(s, i, **kw)

    monkeypatch.setattr(shellscan, "close_paren", counted)
    for line in ["((" * 2000, "for ((" * 680, "((a) )" * 680]:
        calls = 0
        assert ALLOW_DEFAULT.evaluate(line).action == "ask", line[:20]
        assert calls <= 4 * (shellwords.MAX_ARITH_MISSES + 1), (line[:20], calls)


# ripgrep 14 runs the program `--hostname-bin` names to learn the host name (for hyperlinks):
# an allow rule for `rg` must not carry it (rg is not installed here: from its manual).
@pytest.mark.parametrize("command", ["rg --hostname-bin=./x.sh foo", "rg --hostname-bin ./x.sh foo",
                                     "rg --hostname=./x.sh foo"])
def test_ripgrep_hostname_program_is_not_carried(command: str) -> None:
    assert ExecRules(allow=["rg"], default="ask").evaluate(command).action == "ask", command
    assert ExecRules(allow=["rg"], default="ask").evaluate("rg -n foo src").action == "allow"
