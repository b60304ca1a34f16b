"""A profile that sets no pids limit gets one (4096): without it a fork bomb in a run of a
profile of the person's own exhausted the host's pids (review s34, helper 140), though the
threat model promised a pids limit. Built-in profiles keep theirs; a profile's own stands."""

from __future__ import annotations

from pathlib import Path

from console.config.load import load


def test_a_profile_without_limits_gets_the_default_pids_limit(tmp_path: Path) -> None:
    cfg = load(tmp_path / "c.toml", text='[profiles.mine]\ncommand = ["true"]\n'
                                         '[profiles.other]\ncommand = ["true"]\n'
                                         'limits = { memory = "1g" }\n'
                                         '[profiles.own]\ncommand = ["true"]\n'
                                         'limits = { pids = 99 }\n')
    assert cfg.profile("mine").limits.pids == 4096
    assert cfg.profile("other").limits.pids == 4096
    assert cfg.profile("own").limits.pids == 99
    assert cfg.profile("shell").limits.pids == 512  # the built-in's own


def test_a_built_in_profile_extended_keeps_its_pids_limit(tmp_path: Path) -> None:
    cfg = load(tmp_path / "c.toml", text='[profiles.claude]\nlimits = { memory = "8g" }\n')
    assert cfg.profile("claude").limits.pids == 1024
