"""What allow rules carried (review s33, helper 123; each case run with the real tool in /tmp:
bash 5.2.15, git 2.39.5, less 590, pytest 8, npm 11.19.1):

- A program's own option tables were looked up by the command's literal first word, so a rule
  naming it by path, after a wrapper or after an assignment carried all of them:
  `timeout 30 find . -name '*.py' -delete` deleted the files, `LC_ALL=C sort -o F` and
  `timeout 10 sort -o F` wrote F.
- `pytest --basetemp DIR` empties DIR first (`--basetemp ~` emptied a HOME holding .ssh/);
  `--junitxml`, `--debug`, `--report-log` write files, `--pastebin` posts to a web service.
- `less --lesskey-src=F` (and `-k F`) reads F's `#env` section: `LESSOPEN=|CMD %s` runs CMD.
- `python3 -m json.tool IN OUT` writes OUT, `npm ls --logs-dir=DIR` writes a log in DIR,
  `ssh -E F` writes its log to F.
"""

from __future__ import annotations

import pytest

from console.policy import ExecRules, evaluate_exec

FORBID = ["rm -rf /", "rm -rf ~", "git push --force", "git reset --hard"]


def _action(allow: list[str], command: str) -> str:
    return evaluate_exec(command, ExecRules(allow=allow, forbid=FORBID)).action

@pytest.mark.parametrize("command", [
    "less --lesskey-src=lk.src README",
    "less --lesskey-s=lk.src README",
    "less -k lk.src README",
    "less --lesskey-file=lk README",
])
def test_less_lesskey_is_not_allowed(command: str) -> None:
    assert _action(["less"], command) != "allow", command


@pytest.mark.parametrize("command", [
    "pytest --basetemp ~",
    "pytest --basetemp=/home/agent",
    "pytest -q --basetemp ~/.ssh",
    "python3 -m pytest --basetemp ~",
    "pytest --junitxml=/tmp/x",
    "pytest --debug=/tmp/x",
    "pytest --report-log=/tmp/x",
    "pytest --pastebin=all",
])
def test_pytest_options_that_delete_write_or_post_are_not_allowed(command: str) -> None:
    assert _action(["pytest", "python3 -m pytest"], command) != "allow", command


def test_npm_ls_logs_dir_is_not_allowed() -> None:
    assert _action(["npm ls"], "npm ls --logs-dir=/tmp/x") != "allow"


# The program-specific tables (riskyopts._RISKY_SHORT, _RISKY_LONG_FOR, _RISKY_WORDS, _RISKY_GIT,
# _OUTPUT_OPERAND) are looked up by the command's literal first word (execshape.beyond:
# `risky_options(words[0], ...)`, `written_operand(words)`): a rule that names the program by
# path, after a wrapper or after an assignment carries all of them. Run for real:
# `timeout 30 find . -name '*.py' -delete` deleted the files, `timeout 60 find DIR -delete`
# DIR, `LC_ALL=C sort -o F` and `timeout 10 sort -o F` wrote F.
@pytest.mark.parametrize(("rule", "command"), [
    ("timeout 30 find . -name '*.py'", "timeout 30 find . -name '*.py' -delete"),
    ("timeout 60 find", "timeout 60 find /home/agent -delete"),
    ("/usr/bin/find", "/usr/bin/find . -delete"),
    ("LC_ALL=C sort", "LC_ALL=C sort -o /tmp/x in"),
    ("env LC_ALL=C sort", "env LC_ALL=C sort -o /tmp/x in"),
    ("timeout 10 sort", "timeout 10 sort -o /tmp/x in"),
    ("nice sort", "nice sort -o x in"),
    ("timeout 60 git grep", "timeout 60 git grep -O/tmp/x foo"),
    ("timeout 60 rg", "timeout 60 rg --hostname-bin=/tmp/x foo"),
    ("timeout 60 tar tf", "timeout 60 tar tf a.tar -I id"),
    ("/usr/bin/tar", "/usr/bin/tar -xf a.tar"),
    ("/usr/bin/curl", "/usr/bin/curl -o /tmp/x http://127.0.0.1:1/"),
    ("/usr/bin/sed -n", "/usr/bin/sed -n -i 1p f"),
    ("/usr/bin/uniq", "/usr/bin/uniq in /tmp/out"),
    ("/usr/bin/git clone", "/usr/bin/git clone -u x y"),
    ("/usr/bin/git rebase", "/usr/bin/git rebase -x id"),
])
def test_program_tables_apply_past_a_path_wrapper_or_assignment(rule: str, command: str) -> None:
    assert _action([rule], command) != "allow", (rule, command)


@pytest.mark.parametrize(("rule", "command"), [
    ("python3 -m json.tool", "python3 -m json.tool in.json out.json"),
    ("ssh", "ssh -E /tmp/log host.invalid"),
    ("ssh", "ssh -vE/tmp/log host.invalid"),
    ("python3 -m pytest", "python3 -I -m pytest --basetemp ~"),
    ("py.test", "py.test --basetemp ~"),
])
def test_more_writes_an_allow_rule_does_not_carry(rule: str, command: str) -> None:
    assert _action([rule], command) != "allow", (rule, command)


@pytest.mark.parametrize(("rule", "command"), [
    ("timeout 30 find . -name '*.py'", "timeout 30 find . -name '*.py' -print"),
    ("timeout 10 sort", "timeout 10 sort -u in"),
    ("LC_ALL=C sort", "LC_ALL=C sort -r in"),
    ("/usr/bin/find", "/usr/bin/find . -name x"),
    ("pytest", "pytest -q -x tests/test_a.py"),
    ("python3 -m pytest", "python3 -m pytest -k slow --durations=5"),
    ("python3 -m json.tool", "python3 -m json.tool in.json"),
    ("less", "less -R README"),
    ("ssh", "ssh -v host.invalid"),
    ("timeout 5 git status", "timeout 5 git status --short"),
])
def test_what_the_rules_mean_still_goes_on_unasked(rule: str, command: str) -> None:
    assert _action([rule], command) == "allow", (rule, command)


def test_a_runners_rule_does_not_carry_the_options_of_the_program_it_runs() -> None:
    assert _action(["npm"], "npm x -- find . -delete") != "allow"
    assert _action(["npm"], "npm x -- prettier --check .") == "allow"  # no table: its own work
