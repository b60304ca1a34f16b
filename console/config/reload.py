"""What a reload changes: the rules and settings that decide something, as lines, and the diff
between two configs that a policy.changed event records (the daemon's live_config reloads)."""

from __future__ import annotations

from console.config import load as config_mod


def policy_lines(cfg: config_mod.Config) -> set[str]:
    """Every rule and setting that decides something, one line each, for a diff."""
    lines: set[str] = set()
    for name, p in cfg.profiles.items():
        lines |= {f"{name} sandbox {p.sandbox}", f"{name} approval_timeout {p.approval_timeout:g}s",
                  f"{name} exec default {p.exec.default}", f"{name} network default {p.network.default}",
                  f"{name} network ports {p.network.ports}"}
        for section, lists in (("exec", p.exec), ("network", p.network)):
            for list_name in ("allow", "ask", "forbid", "deny"):
                for rule in getattr(lists, list_name, ()):
                    lines.add(f'{name} {section} {list_name} "{rule.text}"')
    return lines


def policy_diff(old: config_mod.Config, new: config_mod.Config) -> list[str]:
    before, after = policy_lines(old), policy_lines(new)
    return [f"- {line}" for line in sorted(before - after)] + [f"+ {line}" for line in sorted(after - before)]
