"""Review h196 of what a person's approval turns into after the click: the rule a profile-scope
decision saves into the owner's config.

A grant keeps a command's redirections as the reader gave them (`2>&1` is a redirection, not
a word the program gets), but the rule text it became was written with every word quoted,
redirections too: approving `make lint 2>&1` for the profile planned the rule
`make lint '2>&1'`, a command that passes the text `2>&1` to make. That rule never covers
the command approved, so the daemon refused the decision as one "that would never take
effect" because of the profile's default ask, and the preview showed the misquoted rule; a
`--pattern` with a redirection was misquoted the same way, and a deny saved a forbid rule for
another command than the one denied. The rule is now the pattern as the reader reads it,
redirections as written (console.policy.grants.grant_to_rule).

The planner and the real config writer and loader (no daemon: they are what the daemon calls),
then a real daemon with bubblewrap and the real `ph-ask` for the decision end to end.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from console.config.edit import preview_all
from console.config.load import load
from console.config.profile_rules import plan
from console.policy import ExecRules, GrantTable, evaluate_exec
from tests.conftest import Daemon, daemon_with_sitecustomize, needs_bwrap
from tests.core.test_approvals_e2e import background, wait_pending

COMMANDS = ["npm test 2>&1", "pytest -q > out.txt", "make >> build.log", "pytest 2>/dev/null",
            "sort < in.txt", "pytest 1>&2", "ls >| out", "npm test 2>&1 | tail -20"]


def asked(command: str) -> list[str]:
    """The parts of `command` a person is asked about (a request's grant patterns)."""
    decision = evaluate_exec(command, ExecRules([], [], [], "ask"), GrantTable(), run_id="r",
                             profile="shell", now=0)
    assert decision.action == "ask", decision
    return list(decision.asking)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_rule_saved_from_a_command_with_a_redirection_is_that_command(
        tmp_path: Path, command: str) -> None:
    parts = asked(command)
    for allow in (True, False):
        planned = plan("shell", "exec", parts, allow)
        assert [p.rule for p in planned] == parts, f"planned {planned} for {command!r}"
        path = tmp_path / "config.toml"
        edit = preview_all(path, [(p.profile, p.section, p.list_name, p.rule) for p in planned])
        exec_table = tomllib.loads(edit.new_text)["profiles"]["shell"]["exec"]
        assert exec_table == {planned[0].list_name: parts}, edit.new_text
        rules = load(path, text=edit.new_text).profile("shell").exec
        decision = evaluate_exec(command, ExecRules(
            list(rules.allow), list(rules.ask), list(rules.forbid), "ask"), None, now=0)
        assert decision.action == ("allow" if allow else "deny"), (command, edit.new_text)


@needs_bwrap
def test_profile_scope_saves_the_approved_command_with_its_redirection(
        daemon: Daemon, workspace: Path) -> None:
    config = daemon.home / "config.toml"
    config.write_text("# mine\n")
    daemon.cli("reload")
    t, out = background(daemon, workspace, "ph-ask exec -- 'make lint 2>&1'; echo rc=$?")
    req = wait_pending(daemon)[0]
    assert req["subject"] == "make lint 2>&1"
    preview = json.loads(daemon.cli("approve", req["id"], "--scope", "profile", "--preview",
                                    "--json").stdout)
    assert preview["lines"] == ['+ demo exec allow "make lint 2>&1"'], preview
    shown = daemon.cli("approve", req["id"], "--scope", "profile", "--yes", check=False)
    t.join(timeout=60)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "rc=0" in out["result"].stdout
    saved = tomllib.loads(config.read_text())["profiles"]["demo"]["exec"]
    assert saved == {"allow": ["make lint 2>&1"]}, config.read_text()
    check = json.loads(daemon.cli("policy", "check", "demo", "make lint 2>&1", "--json").stdout)
    assert check["action"] == "allow", check


# The person's editor saves the config at the moment the daemon writes a rule into it (after
# the daemon found the file in force, before its write): held open every time.
EDITED = '''
from pathlib import Path
from console.daemon.ops import approvals as ops

_write = ops.write_rules
EDIT = '[profiles.shell.exec]\\nallow = ["rm -rf x"]\\n'


def edited_meanwhile(path, planned):
    path.write_text(path.read_text() + EDIT)
    return _write(path, planned)

ops.write_rules = edited_meanwhile
'''


@needs_bwrap
def test_an_edit_saved_while_a_rule_is_written_is_not_put_in_force_unrecorded(
        home: Path, daemon_env: dict[str, str], workspace: Path, tmp_path: Path) -> None:
    d = daemon_with_sitecustomize(home, daemon_env, tmp_path / "hooks", EDITED, "# mine\n")
    d.start()
    try:
        t, out = background(d, workspace, "ph-ask exec -- make lint; echo rc=$?")
        req = wait_pending(d)[0]
        d.cli("approve", req["id"], "--scope", "profile", "--yes", check=False)
        t.join(timeout=60)
        check = json.loads(d.cli("policy", "check", "shell", "rm -rf x", "--json").stdout)
        changed = json.loads(d.cli("history", "--kind", "policy.changed", "--json").stdout)
    finally:
        d.stop()
    recorded = [c["data"] for c in changed if "rm -rf x" in json.dumps(c["data"])]
    assert check["action"] != "allow" or recorded, (
        f"the edit is in force ({check}) and no policy.changed holds it: {changed}")
