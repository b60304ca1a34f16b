"""The built-in profiles' exec rules as the tests read them (console/agents/profiles.toml): one
loader for the review tests that check lines against the claude, demo or codex profile."""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

from console.policy import ExecRules

PROFILES = Path(__file__).resolve().parents[2] / "console" / "agents" / "profiles.toml"


@functools.cache
def builtin_rules(name: str) -> ExecRules:
    with open(PROFILES, "rb") as f:
        e = tomllib.load(f)["profiles"][name]["exec"]
    return ExecRules(allow=e.get("allow", []), ask=e.get("ask", []), forbid=e.get("forbid", []),
                     default=e.get("default", "ask"))
