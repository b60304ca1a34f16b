"""Review s32 (helper 115): allow rules that carried a write or a program past their words.

Each command was run by the helper with the real tool (git 2.39, GNU tar 1.34, coreutils 9.1,
findutils 4.9, UnZip 6.0, npm 11.19, wget, file 5.44) and with the engine, which allowed it.

- A `--` ended the look for risky options, but a program reads `--` as the value of an option
  that takes one and goes on reading options: `git log --decorate-refs -- --output=.git/config`
  under the built-in profiles' `git log` wrote the file (then `git status` ran its fsmonitor);
  also `git show`/`diff`/`reflog`/`grep -e --`, `sort -T --`, `tar --exclude --`. find reads
  its whole expression after a `--` (`find -- . -delete`).
- Writes that no option table held: `uniq IN OUT`, `xxd IN OUT` (an operand), `iconv -o`,
  `shuf -o`, `file -C`, tar's `--rsh-command`, `--index-file`, `-f host:file` (tar runs rsh),
  wget's `--save-cookies`, unzip's `-qo-l` (a `-` in a cluster negates: `-l` lists no more),
  npm's `--node-options='--require F'`, sqlite3's dot commands and `load_extension`.
- chmod: `--reference=F` copies a mode no forbid or ask rule could read, and `ask = ["chmod
  +x"]` matched the literal `+x` only (`u+x`, `755`, `=x` went unasked).
Commands are data only here, except where the real tool is run in a temporary folder to show
the reading is git's, sort's and find's own.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from console.config.load import load
from console.policy import ExecRules, evaluate_exec

CARRIED = {  # rule -> commands its allow rule must not carry
    "git log": ["git log -1 --format=x --decorate-refs -- --output=.git/config",
                "git log --decorate-refs -- --out=F"],
    "git show": ["git show --decorate-refs -- --output=F"],
    "git diff": ["git diff --no-index --anchored -- --output=F a1 a2"],
    "git reflog": ["git reflog --decorate-refs -- --output=F"],
    "git grep": ["git grep -e hi -e -- -O/tmp/evil"],
    "find": ["find -- victim -delete", "find -- . -maxdepth 0 -exec ./evil ;",
             "find -- . -fprint out", "find -H -- . -fls out"],
    "sort": ["sort -T -- -o out in.txt",
             "sort --random-source -- --compress-program=./cz -T DIR big.txt"],
    "tar -tf": ["tar -tf b.tgz --exclude -- --checkpoint=1 --checkpoint-action=exec=touch",
                "tar -tf b.tgz --index-file=idx.txt"],
    "tar -t": ["tar -t -f localhost:/tmp/a.tar --rsh-command=/tmp/evil",
               "tar -t -f localhost:/tmp/a.tar", "tar -t -v --rmt-command=/tmp/evil -f a.tar"],
    "uniq": ["uniq in.txt out.txt", "uniq -f 1 in.txt out.txt", "uniq -- in.txt out.txt"],
    "xxd": ["xxd in.txt out", "xxd -c 8 in.txt out"],
    "iconv": ["iconv -f utf8 -t ascii -o out in.txt"],
    "shuf": ["shuf -o out in.txt"],
    "file": ["file -C -m ../magic"],
    "unzip -l": ["unzip -l -qo-l a.zip -d ow", "unzip -l --l a.zip"],
    "unzip -t": ["unzip -t -q-t a.zip -d ex"],
    "npm test": ["npm test --node-options='--require /tmp/x.js'", "npm test --node-opt='-r x'"],
    "wget --spider": ["wget --spider --save-cookies=c.txt http://127.0.0.1:8765/",
                      "wget --spider --hsts-file=h http://127.0.0.1:8765/"],
    # second round (helper 118), each run with the real tool
    "tar": ["tar tfC b.tar -- --checkpoint=1 --checkpoint-action=exec='touch MARK'",
            "tar tvfC b.tar -- --to-command=x"],
    "tar -t ": ["tar -t --file=localhost:/tmp/a.tar", "tar -t --file localhost:/tmp/a.tar"],
    "tar -tf ": ["tar -tf localhost:/tmp/a.tar"],
    "file ": ["file --compile -m magic"],
    "sqlite3 ": ["sqlite3 db \"select writefile('out.txt','pwned')\"",
                 "sqlite3 db \"select edit('x','touch MARK')\""],
    "sqlite3": ["sqlite3 db '.shell touch MARK'", "sqlite3 db -cmd '.output F' 'select 1'",
                "sqlite3 db \"select load_extension('./e')\"", "sqlite3 -init F db",
                "sqlite3 db \"ATTACH 'f.db' AS x\"", "sqlite3 db \"VACUUM INTO 'f.db'\""],
}
STILL_ALLOWED = {  # each rule's plain use: nothing past its words writes or runs
    "git log": ["git log --oneline -5", "git log -- src/x.py"],
    "find": ["find . -name '*.py'"],
    "sort": ["sort -u in.txt"],
    "uniq": ["uniq -c in.txt", "uniq -f 1 in.txt"],
    "xxd": ["xxd -c 8 in.txt"],
    "unzip -l": ["unzip -l a.zip"],
    "sqlite3": ["sqlite3 db 'select count(*) from t'"],
    "tar -tf": ["tar -tf a.tar"],
    "tar": ["tar tf a.tar", "tar -t --file=a.tar"],
    "file": ["file x.bin"],
}


@pytest.mark.parametrize(("rule", "command"), [(r, c) for r, cs in CARRIED.items() for c in cs])
def test_an_allow_rule_does_not_carry_what_writes_or_runs(rule: str, command: str) -> None:
    d = evaluate_exec(command, ExecRules(allow=[rule.strip()], default="ask"), consume=False)
    assert d.action == "ask", (d.action, d.provenance)


@pytest.mark.parametrize(("rule", "command"), [(r, c) for r, cs in STILL_ALLOWED.items() for c in cs])
def test_plain_uses_stay_allowed(rule: str, command: str) -> None:
    assert evaluate_exec(command, ExecRules(allow=[rule], default="ask"), consume=False).action == "allow"


@pytest.mark.parametrize("profile", ["claude", "codex", "aider", "demo"])
def test_the_built_in_profiles_do_not_let_git_log_write_git_config(profile: str) -> None:
    rules = ExecRules.from_config(load(None).profiles[profile].exec)
    line = ("git log -1 --format='[core]%n%x09fsmonitor = touch MARK' --decorate-refs -- "
            "--output=.git/config && git status")
    assert evaluate_exec(line, rules, consume=False).action != "allow"


CHMOD_FORBID = ExecRules(forbid=["chmod -R 777"], default="allow")
CHMOD_ASK = ExecRules(ask=["chmod +x"], default="allow")


@pytest.mark.parametrize("command", ["chmod -R --reference=/tmp/w777 tree",
                                     "chmod -R --ref /tmp/w777 tree", "chmod --refer=x -R t"])
def test_a_mode_copied_from_a_file_is_asked_past_a_forbidden_mode(command: str) -> None:
    assert evaluate_exec(command, CHMOD_FORBID, consume=False).action == "ask"


@pytest.mark.parametrize("command", ["chmod u+x f", "chmod a+x f", "chmod o+x f", "chmod +X f",
                                     "chmod 755 f", "chmod =x f", "chmod u=rwx f",
                                     "chmod --reference=exe f", "chmod -x,u+x f", "chmod g=u f",
                                     "chmod -R u+x d", "chmod 0700 f"])
def test_an_ask_rule_adding_a_bit_reaches_every_mode_that_may_set_it(command: str) -> None:
    assert evaluate_exec(command, CHMOD_ASK, consume=False).action == "ask"


@pytest.mark.parametrize("command", ["chmod 644 f", "chmod go-w f", "chmod u+r f", "chmod -x f",
                                     "chmod a-x,u+r f"])
def test_modes_that_set_no_such_bit_are_not_asked(command: str) -> None:
    assert evaluate_exec(command, CHMOD_ASK, consume=False).action == "allow"


# -- the tools' own reading ------------------------------------------------------------------

def _repo(tmp_path: Path) -> Path:
    env = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path),
           "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, env=env)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@x.invalid",
                    "commit", "-q", "--allow-empty", "-m", "one"], check=True, env=env)
    return tmp_path


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_reads_an_option_after_a_dashes_value(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    subprocess.run(["git", "log", "-1", "--decorate-refs", "--", "--output=written"], cwd=repo,
                   check=True, capture_output=True, env={"PATH": "/usr/bin:/bin", "HOME": str(repo)})
    assert (repo / "written").is_file()


def test_sort_and_find_read_options_after_dashes(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("b\na\n")
    subprocess.run(["sort", "-T", "--", "-o", "out", "in.txt"], cwd=tmp_path, check=True)
    assert (tmp_path / "out").read_text() == "a\nb\n"
    subprocess.run(["find", "--", ".", "-maxdepth", "0", "-fprint", "listed"], cwd=tmp_path, check=True)
    assert (tmp_path / "listed").read_text() == ".\n"
