"""The decision types every policy path shares: the ordered Action, where a rule was written, the
one Provenance type, and a Decision (action, provenance, what a person must answer)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    """A decision, ordered by strictness: allow < ask < deny (a forbid rule decides deny). Equal
    to its plain string, so "allow" in JSON, configs and comparisons stays "allow"."""

    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"

    @property
    def rank(self) -> int:
        return _RANK[self.value]

    def __lt__(self, other: object) -> bool:
        return self.rank < Action(other).rank  # type: ignore[arg-type]

    def __le__(self, other: object) -> bool:
        return self.rank <= Action(other).rank  # type: ignore[arg-type]

    def __gt__(self, other: object) -> bool:
        return self.rank > Action(other).rank  # type: ignore[arg-type]

    def __ge__(self, other: object) -> bool:
        return self.rank >= Action(other).rank  # type: ignore[arg-type]


_RANK = {"allow": 0, "ask": 1, "deny": 2}
ACTIONS = tuple(a.value for a in Action)
# The longest subject (a command line, host:port) an agent may ask about; a longer one is
# refused before any rule reads it, and `policy check` says the same.
SUBJECT_MAX_BYTES = 4 * 1024


def subject_too_long(subject: str) -> str | None:
    """Why a subject is refused for its length, or None."""
    if len(subject.encode("utf-8", "surrogatepass")) > SUBJECT_MAX_BYTES:
        return f"the subject is longer than {SUBJECT_MAX_BYTES} bytes"
    return None


def strictest(*actions: str) -> Action:
    """The strictest of some decisions (forbid and deny are both "deny")."""
    return max(Action(a) for a in actions)


@dataclass(frozen=True)
class RuleSource:
    """A rule's text and where it was written (file and 1-based line), when known."""

    text: str
    file: str | None = None
    line: int | None = None

    def where(self) -> str | None:
        if not self.file:
            return None
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass(frozen=True)
class Provenance:
    """Who or what made a decision. `describe()` is the one line people read."""

    kind: str  # rule | grant | person | timeout | default | limit | error | cancelled
    rule: str | None = None  # rule text, or a grant's pattern
    rule_list: str | None = None  # allow | ask | forbid | deny; for "default": the default action
    source: str | None = None  # "config.toml:14"
    grant_id: str | None = None
    scope: str | None = None
    expires_at: float | None = None
    person: str | None = None
    detail: str | None = None

    def describe(self) -> str:
        extra = f"; {self.detail}" if self.detail else ""
        if self.kind == "rule":
            at = f" at {self.source}" if self.source else ""
            return f'rule "{self.rule}" ({self.rule_list}){at}{extra}'
        if self.kind == "grant":
            by = f" by {self.person}" if self.person else ""
            return f"grant {self.grant_id} ({self._scope_words()}){by}{extra}"
        if self.kind == "person":
            grant = f", grant {self.grant_id}" if self.grant_id else ""
            return f"decided by {self.person} ({self._scope_words()}{grant}){extra}"
        if self.kind == "default":
            return self.detail or f'no rule matched: the default "{self.rule_list}"'
        return self.detail or self.kind

    def _scope_words(self) -> str:
        scope = f"scope {self.scope or 'once'}"
        if self.expires_at is not None:
            scope += ", until " + time.strftime("%H:%M:%S", time.localtime(self.expires_at))
        return scope

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out = {k: v for k, v in out.items() if v is not None}
        out["text"] = self.describe()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Decision:
    action: Action
    provenance: Provenance
    # Canonical command parts (or the subject) a person must answer: the patterns of the grants
    # created when someone decides with a scope wider than "once".
    asking: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", Action(self.action))  # "allow" and Action.ALLOW alike

    @property
    def allowed(self) -> bool:
        return self.action == "allow"

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action.value, "provenance": self.provenance.to_dict()}

