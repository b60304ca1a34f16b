"""Review h201 of approval grants: what a grant covers, and for how long.

A profile-scope decision saves a rule into the owner's config and also holds a grant in the
daemon. The file is the truth: once the person takes the saved rule out of the file (or
changes it), the next such command is asked again, in the run that asked the first time too.
The grant used to go on allowing it until it was revoked or the daemon stopped.

A real daemon, real bubblewrap, the real `ph-ask` and the real CLI.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import Daemon, needs_bwrap
from tests.core.test_approvals_e2e import background, wait_pending

# Asks once, waits for the test's word (a file in the workspace), then asks again.
TWICE = ("ph-ask exec -- make lint; echo rc1=$?; i=0; while [ ! -f go ] && [ $i -lt 600 ]; "
         "do sleep 0.1; i=$((i+1)); done; ph-ask exec -- make lint; echo rc2=$?")


def _approve_for_profile(daemon: Daemon, workspace: Path, config: Path):
    config.write_text("# mine\n")
    daemon.cli("reload")
    t, out = background(daemon, workspace, TWICE)
    req = wait_pending(daemon)[0]
    daemon.cli("approve", req["id"], "--scope", "profile", "--yes")
    assert 'allow = ["make lint"]' in config.read_text(), config.read_text()
    return t, out


def _second_ask(daemon: Daemon, workspace: Path, t, out) -> list[dict]:
    """Let the run ask again; the pending requests then (empty: something allowed it)."""
    (workspace / "go").write_text("")
    deadline = time.monotonic() + 30
    rows: list[dict] = []
    while time.monotonic() < deadline and not rows and t.is_alive():
        rows = json.loads(daemon.cli("approvals", "--json").stdout)
        time.sleep(0.1)
    for row in rows:
        daemon.cli("deny", row["id"])
    t.join(timeout=60)
    return rows


@needs_bwrap
def test_a_saved_rule_taken_out_of_the_file_ends_its_grant(
        daemon: Daemon, workspace: Path) -> None:
    config = daemon.home / "config.toml"
    t, out = _approve_for_profile(daemon, workspace, config)
    config.write_text("# mine\n")  # the person takes the rule out again
    daemon.cli("reload")
    grants = json.loads(daemon.cli("grants", "--json").stdout)
    rows = _second_ask(daemon, workspace, t, out)
    text = out["result"].stdout
    assert "rc1=0" in text, text
    assert rows and "rc2=0" not in text, (
        f"the rule is gone from the file, but the grant still allowed it: {grants}", text)
    assert not grants, grants
    ended = json.loads(daemon.cli("history", "--json", "--kind", "grant.ended").stdout)
    assert ended and ended[0]["data"]["rule"] == "make lint", ended


@needs_bwrap
def test_a_saved_rule_changed_to_ask_ends_its_grant(daemon: Daemon, workspace: Path) -> None:
    config = daemon.home / "config.toml"
    t, out = _approve_for_profile(daemon, workspace, config)
    config.write_text(config.read_text().replace("allow = ", "ask = "))
    daemon.cli("reload")
    rows = _second_ask(daemon, workspace, t, out)
    text = out["result"].stdout
    assert rows and "rc2=0" not in text, (config.read_text(), text)


@needs_bwrap
def test_a_saved_rule_left_in_the_file_keeps_allowing(daemon: Daemon, workspace: Path) -> None:
    """An unrelated edit, reloaded, leaves the saved rule (and its grant) in force."""
    config = daemon.home / "config.toml"
    t, out = _approve_for_profile(daemon, workspace, config)
    config.write_text("# mine, edited\n" + config.read_text())
    daemon.cli("reload")
    rows = _second_ask(daemon, workspace, t, out)
    assert not rows and "rc2=0" in out["result"].stdout, (rows, out["result"].stdout)


# A bare repository the agent writes under an ordinary folder name (what `Write src/*` allows:
# HEAD, config, objects/, refs/, no `.git` anywhere): git run in that folder takes it for a git
# folder and runs its config's core.fsmonitor, with core.worktree making it a working one. The
# sandbox's git config sets safe.bareRepository = explicit: only a `--git-dir`/GIT_DIR (which
# the rules ask about) opens one.
BARE_IN_SRC = r"""
mkdir -p src/foo/objects src/foo/refs/heads
printf 'ref: refs/heads/main\n' > src/foo/HEAD
printf '#!/bin/sh\necho ran > /workspace/FSMON-RAN\nexit 1\n' > src/fsmon.sh
chmod 755 src/fsmon.sh
printf '[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tworktree = ..\n\tfsmonitor = /workspace/src/fsmon.sh\n' > src/foo/config
cd src/foo && git status >/dev/null 2>&1; echo git-rc=$?
git config --show-origin --get safe.bareRepository
"""


@needs_bwrap
def test_the_sandboxs_git_opens_no_bare_repository_it_finds(
        daemon: Daemon, workspace: Path) -> None:
    r = daemon.cli("run", "demo", "-w", str(workspace), "--wait", "--", "sh", "-c", BARE_IN_SRC,
                   check=False)
    assert "git-rc=" in r.stdout, r.stdout + r.stderr
    assert not (workspace / "FSMON-RAN").exists(), (
        "git in the sandbox ran the planted core.fsmonitor of src/foo/config", r.stdout)
    assert "explicit" in r.stdout, r.stdout


@needs_bwrap
def test_a_pattern_grant_does_not_cover_code_fed_by_a_here_string(
        daemon: Daemon, workspace: Path) -> None:
    """`--pattern "sqlite3 test.db"` covers added words (never `.shell` among them, nor a pipe
    into it): a here-string feeding it a dot command is asked (tests/policy/
    test_grant_stdin_h201.py has the other redirections)."""
    t, out = background(daemon, workspace, "ph-ask exec -- \"sqlite3 test.db 'select 1'\"; echo rc1=$?;"
                        " ph-ask exec -- \"sqlite3 test.db <<<'.shell id'\"; echo rc2=$?")
    req = wait_pending(daemon)[0]
    daemon.cli("approve", req["id"], "--scope", "run", "--pattern", "sqlite3 test.db")
    rows = _second_ask(daemon, workspace, t, out)
    text = out["result"].stdout
    assert "rc1=0" in text, text
    assert rows and "rc2=0" not in text, ("the pattern grant allowed a here-string's dot command",
                                          text)


def test_a_network_rule_taken_out_ends_its_grant_and_an_unsaved_one_stands(tmp_path: Path) -> None:
    """The same follow for a host saved for the profile (the gate reads the grant table too);
    a grant whose rule never came into force (its save failed) is left to its scope."""
    from console.config.load import load
    from console.daemon.live_config import LiveConfig
    from console.daemon.saved_grants import SavedRuleGrants
    from console.policy import GrantTable, new_grant

    config = tmp_path / "config.toml"
    config.write_text('[profiles.demo.network]\nallow = ["pypi.org:443"]\n')
    live, grants = LiveConfig(config), GrantTable()
    follow = SavedRuleGrants(live, grants).follow
    saved = grants.add(new_grant("network", "PyPI.org.:443", "allow", "profile", run_id=None,
                                 profile="demo", decided_by="me"))
    unsaved = grants.add(new_grant("network", "files.pythonhosted.org:443", "allow", "profile",
                                   run_id=None, profile="demo", decided_by="me"))
    assert follow() == [] and {g.id for g in grants.list()} == {saved.id, unsaved.id}
    config.write_text('[profiles.demo.network]\nallow = ["example.invalid:443"]\n')
    live.cfg = load(config)
    assert follow() == [saved]
    assert [g.id for g in grants.list()] == [unsaved.id]


def test_a_profile_taken_out_of_the_file_ends_its_grants(tmp_path: Path) -> None:
    """The whole profile gone (not only its rule): its grants end, and following the reload
    does not fail on the missing profile (cfg.profile raises ConfigError, not KeyError)."""
    from console.config.load import load
    from console.daemon.live_config import LiveConfig
    from console.daemon.saved_grants import SavedRuleGrants
    from console.policy import GrantTable, new_grant

    config = tmp_path / "config.toml"
    config.write_text('[profiles.mine]\ncommand = ["sh"]\n[profiles.mine.exec]\n'
                      'allow = ["make lint"]\n')
    live, grants = LiveConfig(config), GrantTable()
    follow = SavedRuleGrants(live, grants).follow
    saved = grants.add(new_grant("exec", "make lint", "allow", "profile", run_id=None,
                                 profile="mine", decided_by="me"))
    assert follow() == []
    config.write_text("# mine is gone\n")
    live.cfg = load(config)
    assert follow() == [saved]
    assert grants.list() == []
