"""`pilothouse doctor` says what the agent runs as, and flags a root daemon (issue 11.8)."""

from __future__ import annotations

import os

import pytest

from console.sandbox.doctor import check_agent_identity, run_checks


@pytest.mark.skipif(os.geteuid() != 0, reason="the root-daemon finding needs root")
def test_root_daemon_is_flagged_with_consequence_and_fix(tmp_path):
    f = check_agent_identity()
    assert f.status == "warning"
    assert "agents never do" in f.detail and "pilothouse-agent" in f.detail
    assert "ordinary user" in f.fix


def test_identity_finding_is_part_of_doctor(tmp_path):
    from console.paths import resolve

    os.environ.setdefault("PILOTHOUSE_HOME", str(tmp_path))
    names = [f.name for f in run_checks(resolve())]
    assert "agent identity" in names
