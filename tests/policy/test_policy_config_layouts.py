"""Saving a profile rule into a config file written any way TOML allows: inline tables, dotted
keys, comments everywhere. The person's file stays theirs (comments, key order, layout), and an
edit that would leave a file the daemon refuses is not made."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from console.config.edit import PolicyEditError, apply, preview
from console.config.load import load
from tests.conftest import Daemon, needs_bwrap
from tests.core.test_approvals_e2e import background, wait_pending

# Every way of writing a profile's rules, with a comment at each place one can go.
LAYOUTS = """\
# my Pilothouse config

[defaults]
approval_timeout = "2m"   # I answer fast

# one line per profile, inline
[profiles.inline]
command = ["ph-demo-agent"]   # the demo agent
exec = { allow = ["ls"], default = "ask" }
network = { allow = ["pypi.org"] }

[profiles.dotted]
command = ["ph-demo-agent"]
exec.allow = ["git status"]   # read-only
exec.forbid = ["rm -rf /"]
network.default = "deny"
sandbox = "auto"              # after the dotted keys on purpose

# a whole profile as one inline table
[profiles]
tiny = { command = ["ph-demo-agent"], exec = { ask = ["make"] } }

# the team, last
[team]
approvers = []
"""


@pytest.fixture
def layouts(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(LAYOUTS)
    return path


def comments(text: str) -> list[str]:
    return [line[line.index("#"):] for line in text.splitlines() if "#" in line]


def keys_in_order(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^\s*([A-Za-z_.]+)\s*=", text, re.M)]


def profile(path: Path, name: str) -> dict:
    return tomllib.loads(path.read_text())["profiles"][name]


def test_an_inline_table_gets_the_rule_inside_it(layouts: Path) -> None:
    apply(layouts, "inline", "exec", "allow", "pwd")
    assert layouts.read_text() == LAYOUTS.replace('allow = ["ls"]', 'allow = ["ls", "pwd"]')
    apply(layouts, "inline", "exec", "forbid", "dd")
    assert 'exec = { allow = ["ls", "pwd"], default = "ask", forbid = ["dd"] }\n' in layouts.read_text()
    assert profile(layouts, "inline")["exec"] == {"allow": ["ls", "pwd"], "default": "ask",
                                                  "forbid": ["dd"]}


def test_a_missing_section_goes_inside_an_inline_profile(layouts: Path) -> None:
    apply(layouts, "tiny", "network", "deny", "evil.com")
    assert ('tiny = { command = ["ph-demo-agent"], exec = { ask = ["make"] }, '
            'network = { deny = ["evil.com"] } }\n') in layouts.read_text()
    assert load(layouts).profile("tiny").network.deny[0].text == "evil.com"


def test_dotted_keys_get_the_rule_where_they_are(layouts: Path) -> None:
    apply(layouts, "dotted", "exec", "allow", "git diff")
    assert 'exec.allow = ["git status", "git diff"]   # read-only\n' in layouts.read_text()
    apply(layouts, "dotted", "exec", "ask", "git push")
    apply(layouts, "dotted", "network", "allow", "pypi.org")
    text = layouts.read_text()
    assert ('exec.allow = ["git status", "git diff"]   # read-only\nexec.ask = ["git push"]\n'
            'exec.forbid = ["rm -rf /"]\nnetwork.default = "deny"\nnetwork.allow = ["pypi.org"]\n'
            'sandbox = "auto"') in text
    loaded = load(layouts).profile("dotted")
    assert [r.text for r in loaded.exec.ask][-1] == "git push"
    assert [r.text for r in loaded.network.allow] == ["pypi.org"]


def test_dotted_keys_at_the_top_level(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('profiles.demo.exec.allow = ["a"]  # dotted\n')
    apply(path, "demo", "exec", "allow", "ls")
    assert path.read_text() == 'profiles.demo.exec.allow = ["a", "ls"]  # dotted\n'
    path.write_text('[profiles.demo]\nexec.default = "ask"\n')
    apply(path, "demo", "exec", "allow", "ls")
    assert path.read_text() == '[profiles.demo]\nexec.default = "ask"\nexec.allow = ["ls"]\n'


def test_comments_and_key_order_survive_every_kind_of_edit(layouts: Path) -> None:
    for args in [("inline", "exec", "ask", "make"), ("inline", "network", "deny", "x.com"),
                 ("dotted", "exec", "allow", "pwd"), ("tiny", "exec", "ask", "cargo build"),
                 ("claude", "exec", "allow", "uv sync"), ("demo", "network", "allow", "a.org")]:
        apply(layouts, *args)
    text = layouts.read_text()
    assert comments(text) == comments(LAYOUTS)
    before = keys_in_order(LAYOUTS)
    assert [k for k in keys_in_order(text) if k in before] == before
    assert "\n\n# the team, last\n[team]\n" in text
    assert text.startswith(LAYOUTS[:LAYOUTS.index("[profiles.inline]")])
    load(layouts)  # and the daemon takes it


def test_a_new_table_goes_before_the_comment_that_leads_to_the_next_header(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[profiles.demo]\nsandbox = "none"\n\n# the shell profile\n'
                    '[profiles.shell]\nsandbox = "none"\n')
    apply(path, "demo", "exec", "allow", "ls")
    assert path.read_text() == ('[profiles.demo]\nsandbox = "none"\n\n[profiles.demo.exec]\n'
                                'allow = ["ls"]\n\n# the shell profile\n[profiles.shell]\n'
                                'sandbox = "none"\n')


def test_a_profile_written_in_parts_gets_the_new_table_at_the_end(tmp_path: Path) -> None:
    text = ('[profiles.demo]\nsandbox = "none"\n\n# keys between the parts\n[keys]\napprove = "y"\n\n'
            '[profiles.demo.exec]\nallow = ["a"]\n')
    path = tmp_path / "c.toml"
    path.write_text(text)
    apply(path, "demo", "network", "deny", "evil.com")
    assert path.read_text() == text + '\n[profiles.demo.network]\ndeny = ["evil.com"]\n'


def test_a_built_in_profile_gets_a_table_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[defaults]\nsandbox = "none"\n')
    apply(path, "claude", "network", "allow", "pypi.org")
    assert path.read_text() == ('[defaults]\nsandbox = "none"\n\n[profiles.claude.network]\n'
                                'allow = ["pypi.org"]\n')
    assert "pypi.org" in [r.text for r in load(path).profile("claude").network.allow]


@pytest.mark.parametrize(("text", "args", "words"), [
    ('profiles = "none"\n', ("demo", "exec", "allow", "ls"), r"\[profiles\] is not a table"),
    ('[[profiles.demo.exec]]\nallow = ["a"]\n', ("demo", "exec", "allow", "ls"),
     r"\[profiles.demo.exec\] is not a table"),
    ('[profiles.demo.exec]\nallow = "a"\n', ("demo", "exec", "allow", "ls"), "allow in .* is not a list"),
])
def test_a_shape_a_rule_cannot_go_into_is_refused(tmp_path: Path, text: str, args: tuple,
                                                  words: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(PolicyEditError, match=words):
        apply(path, *args)
    assert path.read_text() == text


@pytest.mark.parametrize(("text", "args", "words"), [
    # a profile defined nowhere: the file would have a profile without a command
    ("", ("nosuch", "exec", "allow", "ls"), "command must be a non-empty list"),
    # the file is already one the daemon refuses: the edit names the line and the reason
    ('[profiles.demo]\nsandbox = "none"\nsandbox_typo = "bwrap"\n', ("demo", "exec", "allow", "ls"),
     "line 3: unknown key 'sandbox_typo'"),
    # a rule the loader refuses
    ('[profiles.demo.exec]\nallow = ["ls"]\n', ("demo", "exec", "allow", "make; rm -rf /"),
     "allow rule 'make; rm -rf /': a rule is one plain command"),
    ('[profiles.demo.network]\nallow = ["pypi.org"]\n', ("demo", "network", "allow", "*.com"),
     "allow rule '\\*.com'"),
])
def test_an_edit_the_loader_would_refuse_writes_nothing(tmp_path: Path, text: str, args: tuple,
                                                        words: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(PolicyEditError, match=words) as caught:
        preview(path, *args)
    assert str(path) in str(caught.value) and "nothing was written" in str(caught.value)
    with pytest.raises(PolicyEditError, match=words):
        apply(path, *args)
    assert path.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "c.toml.lock"]


def test_a_file_that_cannot_be_written_is_a_clear_refusal(tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("")
    path = tmp_path / "not-a-folder" / "config.toml"
    with pytest.raises(PolicyEditError, match="cannot write it .*the file is as it was"):
        apply(path, "demo", "exec", "allow", "ls")


@needs_bwrap
def test_an_approval_for_the_profile_says_why_the_file_cannot_take_it(daemon: Daemon,
                                                                      workspace: Path) -> None:
    """The person saves a rule while their file has a typo the daemon refused: the rule is not
    written into it, and the answer names the file, the line and the reason."""
    config = daemon.home / "config.toml"
    t, out = background(daemon, workspace, "ph-ask exec -- make lint; echo rc=$?")
    req = wait_pending(daemon)[0]
    broken = '# mine\n[defaults]\napproval_timeout = "60s"\nsandbx = "none"\n'
    config.write_text(broken)
    refused = daemon.cli("approve", req["id"], "--scope", "profile", "--yes", check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused
    assert f"{config}: with this rule the file would not load (line 4: unknown key 'sandbx'" \
        in refused.stderr and "nothing was written" in refused.stderr
    assert config.read_text() == broken
    daemon.cli("deny", req["id"])
    t.join(timeout=60)
    assert "rc=1" in out["result"].stdout
