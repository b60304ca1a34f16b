"""Exec rules, grants with scopes, and the provenance of every decision.

An exec rule is a string of shell words matched as a prefix of a command's words. A command line
is split on `&&`, `||`, `;`, `|`, `&`, newlines and parentheses, and every part must pass:
forbid (deny) > ask > allow, no rule -> the profile's default. Order of evaluation:

    forbid rule -> deny, always (no grant overrides a forbid)
    deny grant  -> deny
    allow grant -> allow (for that part)
    ask rule    -> ask;  allow rule -> allow;  else the default

Rules are guard rails, not the sandbox: matching errs towards asking. Forbid and ask rules also see
through `VAR=x`, wrappers (`env`, `sudo`, `nohup`...), paths (`/bin/rm`), `eval`, `sh -c` and
command substitutions; allow rules match only the literal words, and a part whose meaning depends
on a substitution or unusual quoting can never be allowed by a rule, only asked.

The tokenizer is in console/shellwords.py; the config writer in console/policy_config.py.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import cached_property
from typing import Any

from console.execshape import Shape, covers, risky_options, shape_of
from console.gate.hosts import BadTarget, ip_literal, normalise_host, parse_connect_target
from console.gate.rules import Pattern, parse_pattern
from console.shellwords import (
    CommandPart,
    ParseError,
    canonical,
    command_words,
    expand,
    strict_variants,
    unwrap_stages,
    write_targets,
)


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
GRANT_KINDS = ("exec", "network", "write", "custom")
SCOPES = ("once", "run", "timed", "profile", "global")
WEB_PORTS = (80, 443)  # the config's default `ports`, for callers that know no profile
MAX_TIMED_S = 7 * 24 * 3600


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


# --- exec rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandPattern:
    """One exec rule or grant pattern, read once by the same parser that reads commands."""

    part: CommandPart

    @cached_property
    def words(self) -> tuple[str, ...]:
        return tuple(self.part.words)

    @cached_property
    def program_words(self) -> tuple[str, ...]:
        return tuple(command_words(self.part))

    @cached_property
    def writes(self) -> frozenset[str]:
        return frozenset(write_targets(self.part))

    @cached_property
    def shape(self) -> Shape | None:
        return shape_of(unwrap_stages(list(self.program_words))[0])

    def reaches(self, part: CommandPart) -> bool:
        """For forbid and ask rules and deny grants: the literal words as a prefix (as written
        or through wrappers), or the same program with the same flags in any order or spelling."""
        n = len(self.words)
        if any(n <= len(v) and tuple(v[:n]) == self.words for v in strict_variants(part)):
            return True
        mine = self.shape
        if mine is None:
            return False
        stages = unwrap_stages(command_words(part))
        return any(theirs is not None and covers(mine, theirs) for theirs in map(shape_of, stages))

    def allows(self, part: CommandPart) -> bool:
        """For allow rules and wide grants: the literal words as a prefix, and nothing past them
        that writes a file or runs a program unless the pattern names it."""
        own, words = self.program_words, command_words(part)
        n = len(own)
        if not (n <= len(words) and tuple(words[:n]) == own):
            return False
        if not set(write_targets(part)) <= self.writes:
            return False
        return not risky_options(words[0] if words else "", words[n:])

    def is_exactly(self, part: CommandPart) -> bool:
        return part.words == self.part.words and part.redirects == self.part.redirects


def compile_pattern(text: str) -> CommandPattern:
    """The one reading of an exec rule or exec grant pattern; ValueError says what is wrong."""
    try:
        parts = expand(text)
    except ParseError as exc:
        raise ValueError(f"cannot read it as shell words ({exc})") from None
    if len(parts) != 1 or parts[0].opaque:
        raise ValueError("a rule is one plain command: no ;, &&, ||, |, $(...), backticks or $'...'")
    if not command_words(parts[0]):
        raise ValueError("a rule needs a command, not only a redirection")
    return CommandPattern(parts[0])


def rule_words(text: str) -> tuple[str, ...]:
    """The words of one exec rule or exec grant pattern; ValueError says what is wrong."""
    return compile_pattern(text).words


@dataclass(frozen=True)
class _Rule:
    source: RuleSource
    pattern: CommandPattern
    list_name: str

    @property
    def words(self) -> tuple[str, ...]:
        return self.pattern.words

    def matches(self, part: CommandPart) -> bool:
        if self.list_name == "allow":
            return self.pattern.allows(part)
        return self.pattern.reaches(part)

    def provenance(self, detail: str | None = None) -> Provenance:
        return Provenance(
            "rule", rule=self.source.text, rule_list=self.list_name,
            source=self.source.where(), detail=detail,
        )


def _as_source(item: Any) -> RuleSource:
    if isinstance(item, str):
        return RuleSource(item)
    # RuleSource, or any object with text/file/line (console.config.Rule)
    return RuleSource(item.text, getattr(item, "file", None) or None, getattr(item, "line", None))


def _as_rules(items: Iterable[Any], list_name: str) -> list[_Rule]:
    rules = []
    for item in items:
        src = _as_source(item)
        try:
            pattern = compile_pattern(src.text)
        except ValueError as exc:
            at = f" at {src.where()}" if src.where() else ""
            raise ValueError(f'exec rule "{src.text}" ({list_name}){at}: {exc}') from None
        rules.append(_Rule(src, pattern, list_name))
    return rules


class ExecRules:
    """One profile's exec rules. Items are RuleSource objects (or anything with text, file and
    line, like console.config.Rule) or plain strings (source unknown)."""

    def __init__(
        self,
        allow: Iterable[Any] = (),
        ask: Iterable[Any] = (),
        forbid: Iterable[Any] = (),
        default: str = "ask",
    ) -> None:
        if default not in ACTIONS:
            raise ValueError(f'exec default must be allow, ask or deny, not "{default}"')
        self.allow = _as_rules(allow, "allow")
        self.ask = _as_rules(ask, "ask")
        self.forbid = _as_rules(forbid, "forbid")
        self.default: str = default

    @classmethod
    def from_config(cls, exec_config: Any) -> ExecRules:
        """From console.config.ExecConfig (default, allow, ask, forbid): the rules it compiled
        when the config loaded, or compiled now for one built by hand."""
        compiled = getattr(exec_config, "compiled", None)
        if compiled is not None:
            return compiled
        return cls(exec_config.allow, exec_config.ask, exec_config.forbid, exec_config.default)

    def evaluate(self, command: str) -> Decision:
        """The static decision, no grants."""
        return evaluate_exec(command, self)


def _most_specific(rules: list[_Rule], part: CommandPart) -> _Rule | None:
    # The longest (most specific) matching rule is the one worth naming.
    hits = [r for r in rules if r.matches(part)]
    return max(hits, key=lambda r: len(r.words)) if hits else None


def evaluate_exec(
    command: str,
    rules: ExecRules,
    grants: GrantTable | None = None,
    *,
    run_id: str | None = None,
    profile: str | None = None,
    now: float | None = None,
    consume: bool = True,
) -> Decision:
    """Decide a command line before any person answers (see the module docstring for the order).

    With consume, "once" grants that decided are used up."""
    now = time.time() if now is None else now
    try:
        parts = expand(command)
    except ParseError as exc:  # never allowed: asked, or denied under a deny default
        return Decision(strictest("ask", rules.default), Provenance("error", detail=(
            f"the command line cannot be read ({exc}); a person must look")))
    top = [p for p in parts if not p.nested]
    if not top:
        return Decision(strictest("ask", rules.default), Provenance("error", detail="empty command"))

    # 1. forbid rules, in every part and every nested command: nothing overrides them.
    for part in parts:
        hit = _most_specific(rules.forbid, part)
        if hit:
            return Decision("deny", hit.provenance("inside a nested command" if part.nested else None))

    live = grants.live("exec", run_id, profile, now) if grants else []
    # 2. deny grants, seen through wrappers like forbid rules.
    for part in parts:
        g = next((g for g in live if g.effect == "deny" and g.covers(part)), None)
        if g:
            if consume and grants:
                grants.consume(g)
            return Decision("deny", g.provenance())

    # 3. per top-level part: allow grant, ask rule, allow rule, default.
    verdicts: list[tuple[str, Provenance, CommandPart]] = []
    used: list[Grant] = []
    for part in top:
        g = next((g for g in live if g.effect == "allow" and g.covers(part)), None)
        if g:
            used.append(g)
            verdicts.append(("allow", g.provenance(), part))
            continue
        asked = _most_specific(rules.ask, part)
        allowed = _most_specific(rules.allow, part)
        if asked:
            verdict: tuple[str, Provenance] = ("ask", asked.provenance())
        elif allowed and not part.opaque:
            verdict = ("allow", allowed.provenance())
        else:
            verdict = (rules.default, Provenance("default", rule_list=rules.default))
        if part.opaque and verdict[0] == "allow":
            verdict = ("ask", Provenance("default", rule_list="ask", detail=(
                f'"{canonical(part)}" depends on a substitution or quoting the rules cannot '
                "see through; a person must look")))
        verdicts.append((*verdict, part))
    # Nested commands (eval, sh -c) can make the whole ask, never allow.
    for part in parts:
        if part.nested:
            asked = _most_specific(rules.ask, part)
            if asked:
                verdicts.append(("ask", asked.provenance("inside a nested command"), part))

    action = strictest(*(v[0] for v in verdicts))
    deciding = [v for v in verdicts if v[0] == action]
    # For an allow, name the grant if one was needed: it is the non-obvious reason.
    prov = next((p for _, p, _ in deciding if p.kind == "grant"), deciding[0][1])
    asking = tuple(dict.fromkeys(canonical(p) for a, _, p in verdicts if a == "ask" and not p.nested))
    if action == "allow" and consume and grants:
        for g in used:
            grants.consume(g)
    return Decision(action, prov, asking)


# --- grants ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    kind: str  # once | run | timed | profile | global
    seconds: float | None = None  # for timed


_DURATION = re.compile(r"^(\d{1,6})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_scope(word: str) -> Scope:
    """once | run | 10m, 2h, 90s, 1d (timed) | profile | global (alias: everywhere)."""
    w = word.strip().lower()
    if w in ("once", "run", "profile", "global"):
        return Scope(w)
    if w == "everywhere":
        return Scope("global")
    m = _DURATION.match(w)
    if m:
        seconds = int(m.group(1)) * _UNITS[m.group(2)]
        if 0 < seconds <= MAX_TIMED_S:
            return Scope("timed", float(seconds))
        raise ValueError(f'scope "{word}": a timed grant lasts between 1s and 7d')
    raise ValueError(f'unknown scope "{word}": use once, run, a duration like 10m or 2h, profile or global')


@dataclass(frozen=True)
class Grant:
    """A person's decision that outlives one request. Which runs it covers follows the scope:
    once/run: run_id; timed: run_id until expires_at; profile: profile; global: everything."""

    id: str
    kind: str  # exec | network | write | custom
    pattern: str
    effect: str  # allow | deny
    scope: str
    run_id: str | None = None
    profile: str | None = None
    expires_at: float | None = None
    decided_by: str | None = None
    created_at: float = field(default_factory=time.time)
    # An exec allow grant covers exactly the command a person saw, unless it was given as a
    # pattern (`--pattern`), which covers added words too (never a write or executing option).
    exact: bool = True

    def __post_init__(self) -> None:
        if self.kind not in GRANT_KINDS:
            raise ValueError(f'grant kind must be one of {", ".join(GRANT_KINDS)}, not "{self.kind}"')
        if self.effect not in ("allow", "deny"):
            raise ValueError(f'grant effect must be allow or deny, not "{self.effect}"')
        if self.scope not in SCOPES:
            raise ValueError(f'grant scope must be one of {", ".join(SCOPES)}, not "{self.scope}"')
        if not self.pattern.strip():
            raise ValueError("a grant needs a pattern")
        if self.kind == "exec":
            compile_pattern(self.pattern)
        if self.kind == "network":
            parse_pattern(self.pattern)  # the config's grammar: `*.com` is refused here too

    @cached_property
    def compiled(self) -> CommandPattern | None:
        return compile_pattern(self.pattern) if self.kind == "exec" else None

    @property
    def words(self) -> tuple[str, ...]:
        return self.compiled.words if self.compiled else ()

    def applies(self, run_id: str | None, profile: str | None, now: float) -> bool:
        if self.expires_at is not None and now >= self.expires_at:
            return False
        if self.run_id is not None and self.run_id != run_id:
            return False
        return self.profile is None or self.profile == profile

    def covers(self, part: CommandPart) -> bool:
        """For exec: deny grants reach like forbid rules (through wrappers, any flag order);
        allow grants cover exactly the command, or as a pattern its words plus more (but a part
        with a substitution only when they name it whole)."""
        pattern = self.compiled
        if pattern is None:
            return False
        if self.effect == "deny":
            return pattern.reaches(part)
        if self.exact:
            return pattern.is_exactly(part)
        return pattern.allows(part) and (not part.opaque or len(pattern.words) == len(part.words))

    @cached_property
    def network_pattern(self) -> Pattern | None:
        return parse_pattern(self.pattern) if self.kind == "network" else None

    def matches(self, subject: str, ports: Sequence[int] = WEB_PORTS) -> bool:
        if self.kind == "exec":
            try:
                parts = [p for p in expand(subject) if not p.nested]
            except ParseError:
                return False
            hit = [self.covers(p) for p in parts]
            return bool(hit) and (any(hit) if self.effect == "deny" else all(hit))
        if self.network_pattern is not None:
            return pattern_covers(self.network_pattern, self.effect, subject, ports)
        # write / custom: exact, or a prefix when the pattern ends with "*".
        if self.pattern.endswith("*"):
            return subject.startswith(self.pattern[:-1])
        return subject == self.pattern

    def provenance(self) -> Provenance:
        return Provenance(
            "grant", rule=self.pattern, rule_list=self.effect, grant_id=self.id,
            scope=self.scope, expires_at=self.expires_at, person=self.decided_by,
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def new_grant(
    kind: str, pattern: str, effect: str, scope: str | Scope, *, run_id: str | None,
    profile: str | None, decided_by: str | None, now: float | None = None, exact: bool = True,
) -> Grant:
    """A grant for a scope word ("run", "10m"...), bound to the run or profile it came from."""
    now = time.time() if now is None else now
    sc = scope if isinstance(scope, Scope) else parse_scope(scope)
    return Grant(
        id="g" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(5)),
        kind=kind, pattern=pattern, effect=effect, scope=sc.kind,
        run_id=run_id if sc.kind in ("once", "run", "timed") else None,
        profile=profile if sc.kind == "profile" else None,
        expires_at=now + sc.seconds if sc.seconds else None,
        decided_by=decided_by, created_at=now, exact=exact,
    )


_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: ids are read aloud and typed


class GrantTable:
    """The live grants, shared by policy evaluation and the approvals inbox."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._grants: dict[str, Grant] = {}
        self._clock = clock

    def add(self, grant: Grant) -> Grant:
        self._grants[grant.id] = grant
        return grant

    def revoke(self, grant_id: str) -> Grant | None:
        return self._grants.pop(grant_id, None)

    def consume(self, grant: Grant) -> None:
        """A "once" grant is used up by the request it answered; other scopes stay."""
        if grant.scope == "once":
            self._grants.pop(grant.id, None)

    def expire(self, now: float | None = None) -> list[Grant]:
        now = self._clock() if now is None else now
        gone = [g for g in self._grants.values() if g.expires_at is not None and now >= g.expires_at]
        for g in gone:
            del self._grants[g.id]
        return gone

    def end_run(self, run_id: str) -> list[Grant]:
        gone = [g for g in self._grants.values() if g.run_id == run_id]
        for g in gone:
            del self._grants[g.id]
        return gone

    def list(self, now: float | None = None) -> list[Grant]:
        self.expire(now)
        return sorted(self._grants.values(), key=lambda g: g.created_at)

    def live(self, kind: str, run_id: str | None, profile: str | None, now: float) -> list[Grant]:
        """Grants of a kind that apply to this run now, deny grants first, newest first."""
        live = [g for g in self._grants.values() if g.kind == kind and g.applies(run_id, profile, now)]
        return sorted(live, key=lambda g: (g.effect != "deny", -g.created_at))

    def match(
        self, kind: str, subject: str, run_id: str | None, profile: str | None,
        now: float | None = None, *, consume: bool = True, ports: Sequence[int] = WEB_PORTS,
    ) -> Grant | None:
        """The grant that decides this subject, deny grants first; None when none does.

        For exec, an allow grant decides only if it covers every part of the command line (a
        command with several parts is better put through evaluate_exec)."""
        now = self._clock() if now is None else now
        for g in self.live(kind, run_id, profile, now):
            if g.matches(subject, ports):
                if consume:
                    self.consume(g)
                return g
        return None


# --- network patterns for grants -------------------------------------------------------------


def split_subject(subject: str) -> tuple[str, int | None]:
    """A network subject as the gate writes it ("host:port", "[v6]:port") or a bare host,
    normalised exactly like targets and rules. Raises BadTarget."""
    text = subject.strip()
    try:
        target = parse_connect_target(text)
        return target.host, target.port
    except BadTarget:
        pass
    if text.count(":") >= 2 and not text.startswith("["):
        text = f"[{text}]"  # a bare IPv6 address: no port
    return normalise_host(text), None


def canonical_network_pattern(pattern: Pattern) -> str:
    """A network pattern's one spelling (IDNA, lower case, canonical address), as written back
    to the config: `PyPI.org.:443` -> `pypi.org:443`, `BÜCHER.example` -> `xn--bcher-kva.example`."""
    port = f":{pattern.port}" if pattern.port is not None else ""
    if pattern.network is not None:
        net = pattern.network
        single = net.prefixlen == net.max_prefixlen
        text = str(net.network_address) if single else str(net)
        return f"[{text}]{port}" if net.version == 6 and port else text + port
    prefix = {"exact": "", "sub": "*.", "tree": "**."}[pattern.kind]
    return f"{prefix}{pattern.host}{port}"


def pattern_covers(pattern: Pattern, effect: str, subject: str,
                   ports: Sequence[int] = WEB_PORTS) -> bool:
    """Does a network pattern (a grant's, or a rule's for shadow) cover a subject? The config's
    reading: an allow pattern without a port covers the profile's `ports`, a deny pattern every
    port; hosts and IPs are normalised (IDNA, case, trailing dot) before they are compared."""
    try:
        host, port = split_subject(subject)
    except BadTarget:
        return False
    deny = effect == "deny"
    if port is None:
        if pattern.port is not None:
            return False
    elif not pattern.covers_port(port, ports, deny=deny):
        return False
    literal = ip_literal(host)
    if literal is not None:
        return pattern.matches_address(literal, wrapped=deny)
    return pattern.matches_host(host)


# --- wiring help ---------------------------------------------------------------------------

def make_policy_eval(
    exec_rules_for: Callable[[str], ExecRules],
    grants: GrantTable,
    network_eval: Callable[[str, str, str], Decision] | None = None,
    clock: Callable[[], float] = time.time,
) -> Callable[[str, str, str, str], Decision]:
    """policy_eval(kind, subject, run_id, profile) for agent.sock: exec through rules and grants,
    network through network_eval(subject, run_id, profile) when given (the gate's rules, which
    should consult `grants` too), anything else through grants, then ask."""

    def evaluate(kind: str, subject: str, run_id: str, profile: str) -> Decision:
        now = clock()
        if kind == "exec":
            return evaluate_exec(subject, exec_rules_for(profile), grants,
                                 run_id=run_id, profile=profile, now=now)
        if kind == "network" and network_eval is not None:
            return network_eval(subject, run_id, profile)
        g = grants.match(kind, subject, run_id, profile, now)
        if g:
            return Decision("allow" if g.effect == "allow" else "deny", g.provenance())
        return Decision("ask", Provenance("default", rule_list="ask"), (subject,))

    return evaluate


def grant_to_rule(grant: Grant) -> str:
    """The rule text a profile grant becomes in the config file."""
    if grant.kind == "exec":
        return canonical(CommandPart(list(grant.words)))
    if grant.kind == "network" and grant.network_pattern is not None:
        return canonical_network_pattern(grant.network_pattern)
    raise ValueError(f"{grant.kind} grants have no config rule; they live until the daemon stops")


def rule_list_for(grant: Grant) -> tuple[str, str]:
    """(section, list) a grant's rule goes into: ("exec", "allow"|"forbid") or ("network", ...)."""
    if grant.kind == "exec":
        return "exec", "allow" if grant.effect == "allow" else "forbid"
    if grant.kind == "network":
        return "network", grant.effect
    raise ValueError(f"{grant.kind} grants have no config rule")



def shadow(rule: str, past_requests: Iterable[Mapping[str, Any]], *, kind: str = "exec",
           effect: str = "allow") -> list[Any]:
    """Past requests a proposed rule would have decided, riskiest first: see
    console.policy_shadow.shadow for the ordering."""
    from console.policy_shadow import shadow as _shadow  # here to keep the import one-way

    return _shadow(rule, past_requests, kind=kind, effect=effect)
