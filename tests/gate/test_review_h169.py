"""Review h169: review h166's destinations and grants, attacked (a real daemon, a bubblewrap run,
the real CLI). What held is in the report; here what did not.

A grant's pattern is kept in its one spelling since h166 (canonical_network_pattern), and a
CIDR was written there in Python's hex: `pilothouse deny ID --pattern
64:ff9b::93.184.215.0/120` (as the card names the address, 64:ff9b::93.184.215.14) was listed
by `pilothouse grants` as `64:ff9b::5db8:d700/120`, which names no IPv4 address, where the
single address is written dotted (hosts.address_text, review h166). Denied, never dialled."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import needs_bwrap
from tests.gate.test_review_h166 import answering, started


@needs_bwrap
def test_a_translated_range_in_a_grant_is_written_with_its_ipv4_dotted(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    d = started(home, daemon_env, "nat64", 'default = "ask"\n')
    try:
        asked, out = answering(
            d, workspace, "nat64", ["CONNECT [64:ff9b::5db8:d70e]:443",
                                    "CONNECT [64:ff9b::5db8:d701]:443"],
            lambda row, _: ["deny", row["id"], "--scope", "global",
                            "--pattern", "64:ff9b::93.184.215.0/120"])
        listed = json.loads(d.cli("grants", "--json").stdout)
    finally:
        d.stop()
    assert [r["subject"] for r in asked] == ["[64:ff9b::93.184.215.14]:443"], (asked, out)
    assert out.count("-> HTTP/1.1 403") == 2, out  # the second was denied by the grant
    assert [g["pattern"] for g in listed] == ["64:ff9b::93.184.215.0/120"], listed
