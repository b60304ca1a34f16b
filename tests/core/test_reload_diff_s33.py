"""Review s33 (helper 121): a reload's policy.changed names every setting that changes what is
allowed, who may decide, or what reaches a sandbox ([team], [limits], [audit], [gate], a
profile's carry/env/setenv/workspace/...), never a setenv value, and carries the sha256 of the
whole file before and after, so any change at all is evident."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from console.config.load import load
from console.config.reload import policy_diff
from tests.conftest import Daemon
from tests.core.reloading import reload_in_force

KEY = b"k" * 32
BASE = '[profiles.t]\ncommand = ["true"]\nsandbox = "bwrap"\n'
SECRET = "s3cr3t-value-never-recorded"
GRANTS = ('[team]\napprovers = ["phdaemon"]\n\n'
          '[limits]\napprovers_may_prune = true\n\n'
          '[audit]\nsyslog = "udp://127.0.0.1:5514"\n\n'
          '[gate]\ninference = ["127.0.0.1:8000"]\n\n'
          '[profiles.t]\ncommand = ["true"]\nsandbox = "bwrap"\nworkspace = "/srv"\n'
          'carry = ["/root/.bashrc:~/.bashrc"]\nenv = ["AWS_SECRET_ACCESS_KEY"]\n'
          f'setenv = {{ X = "{SECRET}" }}\n')


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reload_records_team_limits_audit_gate_and_what_reaches_a_sandbox(
        home: Path, daemon_env: dict[str, str]) -> None:
    cfg = Path(daemon_env["PILOTHOUSE_CONFIG"])
    cfg.write_text(BASE)
    before = _sha(cfg)
    d = Daemon(home, daemon_env)
    d.start()
    try:
        cfg.write_text(GRANTS)
        # The reload's own change, or the watcher's a moment before it: the one in force.
        answer, row = reload_in_force(d)
        diff = row["data"]["diff"]
        assert diff == (answer["diff"] or answer["taken"]["diff"]), (answer, row)
        for line in ('+ [team] approvers "phdaemon"', "+ [limits] approvers_may_prune true",
                     "- [limits] approvers_may_prune false",
                     '+ [audit] syslog "udp://127.0.0.1:5514"', '+ [gate] inference "127.0.0.1:8000"',
                     '+ t env "AWS_SECRET_ACCESS_KEY"', '+ t workspace "/srv"'):
            assert line in diff, (line, diff)
        assert any(x.startswith('+ t carry "/root/.bashrc" -> ') for x in diff), diff
        (setenv,) = [x for x in diff if x.startswith("+ t setenv X ")]
        assert "sha256:" in setenv
        # Keyed (review s35): a teammate reading the history cannot try short values against
        # it; a plain sha256 of "hunter2" is one dictionary lookup away.
        assert hashlib.sha256(SECRET.encode()).hexdigest()[:12] not in json.dumps(row)
        assert SECRET not in json.dumps(row) and SECRET not in json.dumps(answer)
        assert row["data"]["sha256_before"] == before and row["data"]["sha256_after"] == _sha(cfg)
        assert f"{len(diff)} change(s)" in row["text"]

        # A change no setting shows (a comment) is still evident from the file's hash.
        cfg.write_text("# a comment\n" + GRANTS)
        answer, last = reload_in_force(d)
        assert not answer["changed"] and answer["diff"] == []
        assert last["data"]["diff"] == []
        assert last["data"]["sha256_before"] == row["data"]["sha256_after"] != last["data"]["sha256_after"]
        assert last["data"]["sha256_after"] == _sha(cfg)
    finally:
        d.stop()


@pytest.mark.parametrize("added", [
    '[team]\ngroup = "wheel"\n', '[team]\napprovers = ["bob"]\n',
    '[limits]\nhead_bytes = "64k"\n', '[limits]\nprune_confirm_age = "1d"\n',
    '[audit]\notlp = "http://127.0.0.1:4318/v1/logs"\n', '[gate]\ninference = ["h:1"]\n',
    '[notify]\ncommand = ["notify-send"]\n', '[gpu]\nsample_hz = 2\n', '[gpu]\nprice_kwh = 0.3\n',
    '[keys]\nquit = "ctrl+q"\n', '[defaults]\nsandbox = "docker"\n',
])
def test_every_daemon_wide_setting_is_in_the_diff(tmp_path: Path, added: str) -> None:
    old = load(None)
    assert policy_diff(old, load(None), secret=KEY) == []
    path = tmp_path / "c.toml"
    path.write_text(added)
    diff = policy_diff(old, load(path), secret=KEY)
    assert any(line[2] == "[" for line in diff), (added, diff)


@pytest.mark.parametrize("key", [
    'command = ["false"]', 'workspace = "/w"', 'sandbox = "docker"', 'image = "x:1"', "gpu = true",
    "gpus = [1]", 'env = ["A"]', 'setenv = { A = "1" }', 'carry = ["~/.npmrc"]',
    'limits = { memory = "1g" }', 'limits = { pids = 10 }', 'limits = { cpus = 1.5 }',
    'approval_timeout = "30s"', 'description = "d"',
])
def test_every_profile_setting_is_in_the_diff(tmp_path: Path, key: str) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text('[profiles.t]\ncommand = ["true"]\n')
    b.write_text("[profiles.t]\n" + key + ("\n" if key.startswith("command") else '\ncommand = ["true"]\n'))
    diff = policy_diff(load(a), load(b), secret=KEY)
    assert diff and all(" t " in f" {line} " for line in diff), (key, diff)


def test_a_setenv_value_change_shows_without_the_value(tmp_path: Path) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(BASE + f'setenv = {{ K = "{SECRET}" }}\n')
    b.write_text(BASE + f'setenv = {{ K = "{SECRET}2" }}\n')
    diff = policy_diff(load(a), load(b), secret=KEY)
    assert len(diff) == 2 and all(x.split()[1:4] == ["t", "setenv", "K"] for x in diff), diff
    assert SECRET not in " ".join(diff)
    # the same value under another installation's key reads otherwise: no lookup table
    assert set(policy_diff(load(a), load(b), secret=b"j" * 32)).isdisjoint(diff)


def test_the_rule_lines_keep_their_format(tmp_path: Path) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(BASE)
    b.write_text(BASE + 'approval_timeout = "30s"\n\n[profiles.t.exec]\nforbid = ["make"]\n'
                 'default = "deny"\n\n[profiles.t.network]\nports = [443]\nallow = ["pypi.org"]\n')
    diff = policy_diff(load(a), load(b), secret=KEY)
    for line in ('+ t exec forbid "make"', "+ t exec default deny", "- t exec default ask",
                 "+ t network ports [443]", "- t network ports [80, 443]",
                 '+ t network allow "pypi.org"', "+ t approval_timeout 30s",
                 "- t approval_timeout 120s"):
        assert line in diff, (line, diff)
