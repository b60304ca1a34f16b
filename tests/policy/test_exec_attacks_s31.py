"""Review s31 (helper 106): command lines that ran a forbidden program while the rules said
allow (an allow default) or ask (where a forbid rule must deny). Each was run by the helper with
the real tool (npm 11.19, coreutils 9.1, strace 6.1, git 2.39, util-linux 2.38, bash 5.2) and a
stand-in `touch` that only leaves a mark. Commands are data only here: never run in a shell.

- npm/npx: an abbreviation of an option that takes a value (`--ta` for --tag, `--user` for
  --userconfig) was read as taking the next word, but npm reads one it cannot resolve as a flag:
  `npx --ta git push --force` pushed. npm's parser also takes the first `--` after the command
  (`npx --ta rm -- -rf ~` ran `rm -rf ~`). `npm edit --editor=CMD`, `npx --shell=P` (npx's
  spelling of --script-shell), and the other programs npm starts, were not read.
- wrappers: getopt takes `--s` (one letter) as an abbreviation too (`timeout --s KILL 5 touch`,
  `env --s 'CMD'`, `script --c CMD`); only `--si` and longer were read.
- strace: a long option's value (`--columns 40`) ended the look for `-o '|CMD'`.
- chmod: `a=rwxX` added x twice, a copy of a class the file decides (`u-g`) gave up although a
  later clause decides every bit, and `-0,a=rwx` was read as options, not a mode.
- `git clone -c core.sshCommand=CMD` (or --config) runs CMD while it clones.
- `umask 0; chmod -R +rwx d` leaves 777: a mode with no who is read as under a umask of 0 too
  (the agent may have set it in an earlier command of its shell).
- Second round (helper 107, on these fixes): npm reads `---call` (any number of dashes), `-c`
  last in a cluster (`-yc`) and `-c=S`, and its program options from its environment
  (`npm_config_editor=`); `npm config set script-shell P`; `git clone --co`/`-qc`; strace's
  `--summary` (a flag, not an abbreviation of `--summary-columns`); flock's `--wait`; and
  options whose value is a program (`tar -I`, `sort --compress-program`, `rg --pre`, `man -P`).
- Suspected, not run here (tools missing or older): `git --attr-source HEAD push` (2.42+),
  `pnpm recursive exec CMD` / `pnpm m exec CMD`, `yarn node ARGS`.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from console.policy import ExecRules
from console.policy.chmodes import mode_bits

RULES = dict(allow=["npm", "npx", "timeout", "nice", "stdbuf", "flock", "env", "script",
                    "strace", "chmod", "git", "true", "ls", "pnpm", "yarn", "tar", "sort", "rg",
                    "man", "rsync", "zip", "ssh", "scp", "sftp", "vim"],
             forbid=["touch", "git push", "rm -rf ~", "chmod -R 777", "evil", "node"])
OPEN = ExecRules(**RULES, default="allow")
ASKS = ExecRules(**RULES, default="ask")

DENIED = [
    "npx --ta git push --force origin main",
    "npx --user touch MARK",
    "npm exec --ta touch MARK",
    "npm exec --pre touch MARK",
    "npx --ta rm -- -rf ~",
    "timeout --s KILL 5 touch MARK",
    "timeout --k 1 5 git push --force",
    "nice --a 5 touch MARK",
    "stdbuf --o 0 touch MARK",
    "flock --t 5 lk touch MARK",
    "env --s 'git push --force'",
    "env --u X touch MARK",
    "env --c /tmp touch MARK",
    "script -q --c 'touch MARK' /dev/null",
    "strace --columns 40 -o '|touch MARK' true",
    "strace --col 40 -o '|touch MARK' true",
    "chmod -R a=rwxX d",
    "chmod -R a+rwxX d",
    "chmod -R u-g,a=rwx d",
    "chmod -R o=u,a+rwx d",
    "chmod -R -0,a=rwx d",
    "chmod -R -1,a+rwx d",
    "chmod -R -u,a=rwx d",
    "umask 0; chmod -R +rwx d",  # a who-less mode is 777 under the umask the agent may set
    "chmod -R =rwx d",
    "npm edit foo --editor='touch MARK'",
    "npm edit foo --editor 'rm -rf ~'",
    "npm docs foo --browser=evil",
    "npm install --git=evil git+ssh://x.invalid/y",
    # the helper's suspicions, read as the tools' documentation says
    "git --attr-source HEAD push --force",  # git 2.42+: --attr-source takes a value
    "pnpm recursive exec touch MARK",
    "pnpm m exec git push --force",
    "yarn node evil.js",  # yarn's node runs node
    # second round (helper 107), each run with the real tool
    "npm exec ---call 'touch MARK'",  # npm reads any number of dashes
    "npx ---call 'touch MARK'",
    "npm exec ----call='touch MARK'",
    "npm edit foo ---editor=touch",
    "npm ---script-shell=touch run x",
    "npx -yc 'touch MARK'",  # -c last in a cluster of npm's short flags
    "npx -qc 'touch MARK'",
    "npm exec -yc 'touch MARK'",
    "npx -y -c='touch MARK'",
    "npm_config_shell=touch npm explore foo",  # npm's program options from its environment
    "npm_config_editor=touch npm edit foo",
    "NPM_CONFIG_CALL='touch MARK' npm exec",
    "strace --summary -o '|touch MARK' true",  # a flag that starts like a value option
    "flock --wait 1 /tmp/l touch MARK",
    "flock --w 1 /tmp/l touch MARK",
    "tar -I 'touch MARK' -xf a.tar",  # options whose value is a program the tool runs
    "tar --use-compress-program=touch -xf a.tar",
    "sort --compress-program=touch f",
    "rg --pre touch x",
    "man -P touch ls",
    # third round (helper 109), each run with the real tool
    "env 'npm_config_script-shell=touch' npm run x",
    "tar -cf a.tar --checkpoint=1 --checkpoint-action=exec=touch x",
    "tar -cf a.tar --checkpoint-act=exec=touch x",
    "zip -TT=touch -T a.zip x",
    "ssh -o ProxyCommand=touch h.invalid",
    "ssh -oProxyCommand=touch h.invalid",
    "ssh -o 'ProxyCommand touch' h.invalid",
    "scp -S touch x h.invalid:y",
    "sftp -S touch h.invalid",
]
ASKED = [  # a program npm or git runs whose words the rules cannot see whole
    "npx --shell=/tmp/sh hi",
    "npm exec --shell /tmp/sh hi",
    "git clone -c core.sshCommand='touch MARK #' ssh://x.invalid/y dst",
    "git clone --config core.sshCommand='touch MARK' ssh://x.invalid/y dst",
    "git clone --config=core.sshCommand='touch MARK' ssh://x.invalid/y dst",
    "git clone -ccore.sshCommand=evil ssh://x.invalid/y dst",
    # second round (helper 107): an abbreviation git takes, -c in a cluster, npm config set
    "git clone --co core.hooksPath=H src d",
    "git clone --co=core.hooksPath=H src d",
    "git clone -qc core.hooksPath=H src d",
    "git clone -qccore.hooksPath=H src d",
    "npm config set script-shell touch --location=project",
    "npm set editor=touch",
    "npm --location project config set script-shell touch",  # third round (helper 109)
    "npm c set script-shell touch",
    "npm run x --userconfig ./rc",
    "npm_config_globalconfig=./rc npm run x",
    "tar cIf touch b.tar x",
    "ssh -F ./cfg h.invalid",
    "vim -Es -c '!touch' -c q x",
]
STILL_ALLOWED = ["npx prettier --check .", "npm exec -- ls", "npx tsc -p .", "npm run build",
                 "timeout 5 ls", "timeout --signal KILL 5 ls", "env --unset X ls", "chmod -R 755 d",
                 "chmod -R u=rwx,go=rx d", "strace --columns 40 -o out.txt ls",
                 "git clone https://x.invalid/y dst", "git clone -c core.autocrlf=false ssh://x.invalid/y d",
                 "git clone -q src d", "npm config set registry http://127.0.0.1:1/", "tar -xzf a.tar.gz",
                 "sort -n f", "rg --pre-glob '*.x' y", "npx -y prettier --check .", "flock /tmp/l ls",
                 "tar xzf a.tgz", "ssh h.invalid ls", "vim x", "npm config get registry"]


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


def _random_mode(rng: random.Random) -> str:
    """Modes with copies of classes and dash-led words, as the helper's fuzzer made them."""
    if rng.random() < 0.1:
        return rng.choice(["", "0", "=", "+", "-"]) + format(rng.randrange(0o10000), "o")
    clauses = []
    for _ in range(rng.randint(1, 3)):
        who = "".join(rng.sample("ugoa", rng.randint(0, 2)))
        clauses.append(who + "".join(
            rng.choice("+-=") + (rng.choice("ugo") if rng.random() < 0.25 else
                                 "".join(rng.sample("rwxst", rng.randint(0, 4))))
            for _ in range(rng.randint(1, 3))))
    return ",".join(clauses)


@pytest.mark.skipif(shutil.which("chmod") is None, reason="chmod is not installed")
def test_modes_the_real_chmod_makes_777_from_any_start_are_read_as_777(tmp_path: Path) -> None:
    """An oracle: random modes given to the real chmod from six starting modes, under two
    umasks. Where chmod always leaves 777 whatever the umask, mode_bits says 777; where
    mode_bits decides the bits, chmod leaves exactly those (the s30 oracle, wider here)."""
    rng, always, missed = random.Random(31), 0, []
    starts = {start: tmp_path / f"f{start:o}" for start in (0o000, 0o777, 0o7777, 0o644, 0o111, 0o4755)}
    for f in starts.values():
        f.write_text("")
    old = os.umask(0o022)
    try:
        for _ in range(1500):
            mode = _random_mode(rng)
            left = set()
            for mask in (0o022, 0o077):
                os.umask(mask)
                for start, f in starts.items():
                    os.chmod(f, start)
                # one chmod for the six starting modes (each file is changed on its own)
                if subprocess.run(["chmod", "--", mode, *map(str, starts.values())],
                                  capture_output=True).returncode:
                    break
                left.update(f.stat().st_mode & 0o777 for f in starts.values())
            bits = mode_bits(mode)
            if bits is not None:
                assert left == {bits & 0o777}, (mode, oct(bits), sorted(map(oct, left)))
            if left == {0o777}:
                always += 1
                if bits is None or bits & 0o777 != 0o777:
                    missed.append(mode)
    finally:
        os.umask(old)
    assert always > 20 and missed == [], (always, missed)
