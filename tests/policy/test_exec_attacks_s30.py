"""Review s30 (helper 101): command lines that ran a forbidden program while the rules said
allow (an allow default) or ask (where a forbid rule must deny). Each was run by the helper with
real bash and the real tool (npm 11, uv 0.13, procps watch, util-linux unshare, strace 6,
coreutils env 9.1, git 2.39, bash 5.2) and a stand-in `touch`/`evil` that only leaves a mark.
Commands are data only here: never run in a shell. Where a line cannot be read to the end, it is
asked (never allowed): the forbidden word may be anywhere past the reading.

- runners: an option not known to take a value doubled the readings, and past four of them the
  command was never read; `npx`, `uvx`, `pnpx` took the first word past an unknown option as the
  program; `npm explore PKG -- CMD` and `--script-shell=P -c S` were not read at all.
- wrappers: watch's `-d` (a value only attached), unshare's `--monotonic`, strace's long options
  with values, and strace `-o |CMD` (its output piped into CMD).
- `env -S` read with shlex, not env's own rules: `-S "#x" touch` (a comment), `\\c` in quotes.
- `unset 'a[x]'` evaluates x's value as arithmetic (a subscript there runs its `$(...)`).
- git options whose value git runs (`--upload-pack`, `--receive-pack`, `--exec`, `grep -O`), an
  abbreviation (`rebase --exe`), and config keys that run one (`trailer.*.cmd`, `imap.tunnel`).
- Second round (helper 103): npm's `--script-shell` on any subcommand (`npm test`), npm's and
  git's abbreviations (`--script-shel`, `--c=`, `--u=`), git's short clusters (`-ix`),
  `npm_config_script_shell=`, strace's `-fo '|evil'` and two more long options with values.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from console.policy import ExecRules
from console.policy.envsplit import UNKNOWN_WORD, env_split
from tests.policy.test_exec_attacks_s18 import _policy_check

RULES = dict(allow=["npm", "npx", "uv", "uvx", "pnpx", "watch", "strace", "unshare", "env",
                    "git", "ls", "read", "yarn", "pnpm"],
             forbid=["touch", "evil", "git push"])
OPEN = ExecRules(**RULES, default="allow")
ASKS = ExecRules(**RULES, default="ask")

DENIED = [
    "npx --loglevel silent touch MARK",
    "npm exec --loglevel silent --tag x --otp 1 --umask 022 --editor vi touch MARK",
    "npm explore p -- touch MARK",
    "npm exec --script-shell=evil -c ls",
    "npm --script-shell evil exec -c ls",
    "uvx --no-sources-package a touch MARK",
    "pnpx --loglevel warn touch MARK",
    "watch -d -n 1 touch MARK",
    "unshare -r -T --monotonic 5 touch MARK",
    "strace -f --columns 40 touch MARK",
    "strace -o '|evil' ls",
    "strace --output='!evil' ls",
    "env -S '#x' touch MARK",
    "env -S \"-u 'a\\c' touch MARK\"",
    "git fetch --upload-pack=evil .",
    "git push --receive-pack=evil . HEAD:refs/heads/x",
    "git grep -Oevil main",
    "git archive --remote=. --exec=evil HEAD",
    "git rebase --exe 'touch MARK' HEAD~1",
    "git clone -u evil src dst",
    # second round (helper 103): npm's script shell on any subcommand, abbreviations, clusters
    "npm test --script-shell=evil",
    "npm run build --script-shell evil",
    "npm exec --script-shel=evil -c 'echo hi'",
    "npx --c=touch",
    "npm --c=touch exec",
    "npm_config_script_shell=evil npm exec -c x",
    "git ls-remote --u=evil src",
    "git clone --u evil src d",
    "git rebase -ix evil HEAD~1",
    "strace -fo '|evil' true",
    "strace -qfo '|evil' true",
    "strace --decode-pids comm touch MARK",
    "strace --summary-syscall-overhead 1 touch MARK",
    # yarn's and pnpm's implicit exec: a word none of their commands runs a package's program
    "yarn touch MARK",
    "yarn --silent touch MARK",
    "yarn run touch MARK",
    "pnpm touch MARK",
    "pnpm run touch",
]
ASKED = [  # the command cannot be read whole: asked, never allowed
    "uv run --no-sources-package a --no-sources-package b --no-sources-package c "
    "--no-sources-package d --no-sources-package e touch MARK",
    "read x <<< 'a[$(touch MARK)]'; read -a a <<< 1; unset 'a[x]'",
    "unset 'a[x]'",
    "git -c trailer.x.cmd='touch MARK' interpret-trailers --trailer x=1",
    "git -c imap.tunnel='touch MARK' -c imap.folder=x imap-send",
]
STILL_ALLOWED = ["npx prettier --check .", "npm exec -- ls", "watch -d=permanent -n 1 ls",
                 "strace -o out.txt ls", "git fetch origin", "git grep -O main", "unset x",
                 "env -S 'ls -l' .", "npm --cache /tmp/c install", "git rebase -i HEAD~3",
                 "strace -fo out.txt ls", "yarn install", "yarn add lodash", "pnpm install",
                 "yarn build"]


@pytest.mark.parametrize("command", DENIED)
def test_the_forbidden_program_is_denied(command: str) -> None:
    assert OPEN.evaluate(command).action == "deny", command
    assert ASKS.evaluate(command).action == "deny", command


@pytest.mark.parametrize("command", ASKED)
def test_what_cannot_be_read_whole_is_asked(command: str) -> None:
    # (or refused: a forbid rule's program named in its words is matched flat, review h154)
    assert OPEN.evaluate(command).action in ("ask", "deny"), command


@pytest.mark.parametrize("command", STILL_ALLOWED)
def test_the_tools_own_work_stays_allowed(command: str) -> None:
    assert OPEN.evaluate(command).action == "allow", command


@pytest.mark.parametrize("command", [DENIED[0], DENIED[9], DENIED[12], DENIED[18]])
def test_policy_check_says_deny_too(command: str, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[profiles.t]\ncommand = ["true"]\n[profiles.t.exec]\ndefault = "allow"\n'
                      + "".join(f"{k} = {json.dumps(v)}\n" for k, v in RULES.items()))
    assert _policy_check(config, tmp_path / "home", command) == "deny"


@pytest.mark.skipif(shutil.which("env") is None, reason="env (coreutils) is not installed")
def test_env_split_is_what_the_real_env_runs(tmp_path: Path) -> None:
    """An oracle: random strings of the characters env -S reads specially, given to the real
    env with a program that prints its arguments: env_split says the same words, or
    [UNKNOWN_WORD] where env refuses the string."""
    printer = tmp_path / "printargs"
    printer.write_text("#!/usr/bin/python3 -S\nimport sys, json\nprint(json.dumps(sys.argv[1:]))\n")
    os.chmod(printer, 0o755)
    pieces = [*"ab #'\"\\_cntx$", "\t", "${X}", "\\_", "\\c", "\\#", "\\\\", "\\'", '\\"', " # "]
    rng, compared = random.Random(30), 0
    for _ in range(500):
        text = f"{printer} " + "".join(rng.choice(pieces) for _ in range(rng.randint(1, 10)))
        mine = env_split(text)
        real = subprocess.run(["env", "-S", text], capture_output=True, text=True,
                              env={"X": "vx", "PATH": "/usr/bin:/bin"})
        if real.returncode:
            assert mine == [UNKNOWN_WORD], (text, real.stderr)
            continue
        argv = json.loads(real.stdout)
        if UNKNOWN_WORD in mine:  # a ${X}: the same number of words, one not known
            assert len(mine) - 1 == len(argv), (text, mine, argv)
        else:
            assert mine == [str(printer), *argv], (text, mine, argv)
            compared += 1
    assert compared > 150
