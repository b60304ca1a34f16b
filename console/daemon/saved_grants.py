"""Profile-scope grants follow the rules they were saved as: the config file is the truth.

A profile-scope decision saves a rule into the owner's config and also holds a grant in the
daemon (it answers the other pending requests at once, and stands where the save failed). Once
the rule has been in force, taking it out of the file or changing it (its list, its words, its
profile) ends the grant at the reload that takes the change: the next such request is asked
again. The grant used to go on allowing it until revoked or the daemon stopped (review h201).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from console.config.schema import Config, ConfigError, Profile
from console.daemon.live_config import LiveConfig
from console.policy import Grant, GrantTable, grant_to_rule, rule_list_for
from console.protocol import EventKind

log = logging.getLogger("pilothouse.grants")


def rule_in_force(cfg: Config, grant: Grant) -> bool:
    """Whether the rule a profile grant was saved as is in its profile's list in `cfg`."""
    try:
        profile: Profile = cfg.profile(grant.profile or "")
        section, list_name = rule_list_for(grant)
        rule = grant_to_rule(grant)
    except (ConfigError, KeyError, ValueError):  # the profile is gone, or the grant has no rule
        return False
    rules = getattr(getattr(profile, section), list_name, [])
    return any(r.text == rule for r in rules)


class SavedRuleGrants:
    """Ends a profile grant once the rule it was saved as, seen in force, is no longer. A
    grant whose rule never came into force (its save failed) stands, as the person was told."""

    def __init__(self, config: LiveConfig, grants: GrantTable,
                 record: Callable[..., None] | None = None) -> None:
        self._config = config
        self._grants = grants
        self._record = record  # the history says why a grant is gone from `grants`
        self._seen: set[str] = set()  # ids of profile grants whose rule has been in force

    def follow(self) -> list[Grant]:
        """After the config in force changed: the grants ended."""
        cfg = self._config.cfg
        live = [g for g in self._grants.list() if g.scope == "profile"]
        ended = []
        for grant in live:
            if rule_in_force(cfg, grant):
                self._seen.add(grant.id)
            elif grant.id in self._seen and self._grants.revoke(grant.id) is not None:
                ended.append(grant)
                log.info("grant %s ended: its rule %r is no longer in profile %s", grant.id,
                         grant.pattern, grant.profile)
                if self._record is not None:
                    self._record(EventKind.GRANT_ENDED, actor="daemon",
                                 text=f"grant {grant.id} ended: its saved rule "
                                      f"{grant.pattern!r} is no longer in profile {grant.profile}",
                                 data={"grant_id": grant.id, "profile": grant.profile,
                                       "rule": grant.pattern})
        self._seen &= {g.id for g in live if g not in ended}
        return ended
