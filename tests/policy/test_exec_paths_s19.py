"""Session 19: spellings of a forbid rule's path, and of its program, that bash or the system
turn into the rule's own. Commands are data only: never run in a shell here.

Facts relied on (bash 5.2.15, Debian 12):
- `~+` is the working folder ($PWD), `~-` the previous one ($OLDPWD), `~N`, `~+N` and `~-N`
  entries of the folder stack, `~NAME` the home of user NAME (`echo ~root` prints `/root`);
- `~/..` is the folder above HOME: `/home` inside a sandbox, `/` for root's `/root`, so
  `rm -rf ~/../..` is `rm -rf /` there;
- a sandbox's HOME is /home/agent; an unsandboxed run's is the daemon's user's home;
- `./`, `./.` and `.//` name the working folder as `.` does;
- `mkfs.ext4` is the program `mkfs -t ext4` runs, and mke2fs is what that runs.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from console.paths import INSIDE_HOME
from console.policy import ExecRules
from tests.policy.test_exec_attacks_s12 import _policy_check

FORBID = ["rm -rf /", "rm -rf ~", "rm -rf .", "mkfs", "fsck"]
RULES = ExecRules(allow=["ls", "git status"], forbid=FORBID, default="allow")
OWN_HOME = pwd.getpwuid(os.getuid()).pw_dir


@pytest.mark.parametrize(("command", "rule"), [
    ("rm -rf ./", "rm -rf ."), ("rm -rf ./.", "rm -rf ."), ("rm -rf .//", "rm -rf ."),
    ("rm -rf ~+", "rm -rf ."), ("rm -rf ~+/", "rm -rf ."),
    (f"rm -rf {INSIDE_HOME}", "rm -rf ~"), (f"rm -rf {INSIDE_HOME}/", "rm -rf ~"),
    ("rm -rf /home//agent/.", "rm -rf ~"), (f"rm -fr {OWN_HOME}", "rm -rf ~"),
    ("mkfs.ext4 /dev/sda1", "mkfs"), ("/sbin/mkfs.xfs -f /dev/sda1", "mkfs"),
    ("mke2fs /dev/sda1", "mkfs"), ("sudo mkfs.vfat /dev/sdb", "mkfs"), ("e2fsck -y x", "fsck"),
])
def test_another_spelling_of_a_forbidden_command_is_denied(command: str, rule: str) -> None:
    decision = RULES.evaluate(command)
    assert decision.action == "deny", (command, decision)
    assert decision.provenance.rule == rule, decision


@pytest.mark.parametrize("command", [
    "rm -rf ~root", "rm -rf ~agent", "rm -rf ~-", "rm -rf ~1", "rm -rf ~+1", "rm -rf ~-2",
    "rm -rf ~/..", "rm -rf ~/../..", "rm -rf ~/../../", "rm -rf ~root/.", "rm -rf ~nobody/..",
])
def test_a_tilde_word_the_rules_cannot_resolve_is_asked(command: str) -> None:
    """Which folder these are depends on the user database, the folder stack or HOME: one may
    be the rule's (`~/../..` is `/` in a home one level down), so none is allowed."""
    decision = RULES.evaluate(command)
    assert decision.action == "ask", (command, decision)
    assert 'rule "rm -rf' in (decision.provenance.detail or ""), decision


@pytest.mark.parametrize("command", [
    "rm -rf ./build", "rm -rf ~+/build", "rm -rf ~/build", "rm -rf /home/agentx",
    f"rm -rf {INSIDE_HOME}/build", "rm -rf build/..x", "ls ~root", "ls ~/..", "mkfsx",
    "git status ~-",
])
def test_nearby_commands_stay_as_the_default_says(command: str) -> None:
    assert RULES.evaluate(command).action == "allow", command


def test_every_path_denies_a_home_spelling_and_asks_a_climb(tmp_path: Path) -> None:
    """The daemon's evaluator and `pilothouse policy check` decide as the engine does."""
    from console.daemon.evaluation import PolicyEvaluator
    from console.daemon.live_config import LiveConfig
    from console.policy import GrantTable

    config = tmp_path / "config.toml"
    config.write_text('[profiles.t]\ncommand = ["true"]\n[profiles.t.exec]\ndefault = "allow"\n'
                      f"forbid = {FORBID!r}\n".replace("'", '"'))
    evaluator = PolicyEvaluator(LiveConfig(config), GrantTable())
    for command, want in ((f"rm -rf {INSIDE_HOME}/", "deny"), ("mkfs.ext4 /dev/x", "deny"),
                          ("rm -rf ~/../..", "ask"), ("rm -rf ~root", "ask")):
        got = [RULES.evaluate(command).action,
               evaluator.policy_eval("exec", command, "r1", "t").action,
               _policy_check(config, tmp_path / "home", command)]
        assert got == [want] * 3, (command, got)
