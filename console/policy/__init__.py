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

The package is pure (no I/O): every decision about a command or a destination is made here.
Where the parts live: the command reader in shellwords.py, the parts it gives in parts.py;
what a command runs (wrappers, shells, nested commands) in unwrap.py, git's own words in
gitwords.py; command shapes, risky options and the one reading of a rule (CommandPattern) in
execshape.py; the decision types in types.py; grants in grants.py; destinations (parse,
normalise, classify) in hosts.py and network patterns in netrules.py; the one network decision
in network.py; shadow in shadow.py. The config writer is
console/config/edit.py (it does I/O). Callers import the engine from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from console.policy.execshape import CommandPattern, compile_pattern, forget_worked_out, rule_words
from console.policy.grants import (
    GRANT_KINDS,
    MAX_TIMED_S,
    SCOPES,
    WEB_PORTS,
    Grant,
    GrantTable,
    Scope,
    canonical_network_pattern,
    covering,
    fed_code,
    grant_to_rule,
    new_grant,
    parse_scope,
    pattern_covers,
    rule_list_for,
    split_subject,
)
from console.policy.parts import CommandPart, ParseError, canonical
from console.policy.types import (
    ACTIONS,
    SUBJECT_MAX_BYTES,
    Action,
    Decision,
    Provenance,
    RuleSource,
    strictest,
    subject_too_long,
)
from console.policy.unwrap import expand

__all__ = [  # console.policy is the one place callers import decisions, rules and grants from
    "ACTIONS", "GRANT_KINDS", "MAX_TIMED_S", "SCOPES", "WEB_PORTS", "Action", "CommandPattern",
    "SUBJECT_MAX_BYTES", "ungrantable", "Decision", "ExecRules", "Grant", "GrantTable", "Provenance",
    "RuleSource", "Scope",
    "canonical_network_pattern", "compile_pattern", "evaluate_exec", "forget_worked_out", "grant_to_rule",
    "make_policy_eval", "new_grant", "parse_scope", "pattern_covers", "rule_list_for",
    "rule_words", "split_subject", "strictest", "subject_too_long",
]


# --- exec rules -------------------------------------------------------------------------------


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
    # RuleSource, or any object with text/file/line (console.config.load.Rule)
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
    line, like console.config.load.Rule) or plain strings (source unknown)."""

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
        """From console.config.load.ExecConfig (default, allow, ask, forbid): the rules it compiled
        when the config loaded, or compiled now for one built by hand."""
        compiled = getattr(exec_config, "compiled", None)
        if compiled is not None:
            return compiled
        return cls(exec_config.allow, exec_config.ask, exec_config.forbid, exec_config.default)

    def evaluate(self, command: str) -> Decision:
        """The static decision, no grants."""
        return evaluate_exec(command, self)


def _why_no_allow(rules: ExecRules, part: CommandPart) -> str | None:
    """When an allow rule's words match but the command goes beyond what it may carry, say so."""
    near = [r for r in rules.allow if r.pattern.prefix_of(part)]
    if not near:
        return None
    rule = max(near, key=lambda r: len(r.words))
    also = rule.pattern.beyond(part) or (
        "its words depend on an expansion or substitution the rules cannot see" if part.opaque
        else part.why_unseen or "it runs what its words do not show (input read as words or as a script)"
        if part.unseen else None)
    if also is None:
        return None
    return (f'no rule allows it: the allow rule "{rule.source.text}" does not cover what this '
            f'command also does ({also}); the default "{rules.default}"')


def _glob_may_reach(rules: ExecRules, part: CommandPart) -> Provenance | None:
    """An ask when a glob or a `~` word (another user's home, `~-`, `~/..`) in the part may
    expand to a forbid or ask rule's words: the rule cannot say it is that command, and no rule
    may allow it."""
    hit = next((r for r in (*rules.forbid, *rules.ask) if r.pattern.may_reach(part)), None)
    if hit is None:
        return None
    return Provenance("default", rule_list="ask", detail=(
        f'a glob, a `~` word or a mode copied from a file (chmod --reference) in "{canonical(part)}" '
        f'may stand for the words of the {hit.list_name} rule '
        f'"{hit.source.text}"{" at " + hit.source.where() if hit.source.where() else ""}; '
        "a person must look"))


def _most_specific(rules: list[_Rule], part: CommandPart) -> _Rule | None:
    # The longest (most specific) matching rule is the one worth naming.
    hits = [r for r in rules if r.matches(part)]
    return max(hits, key=lambda r: len(r.words)) if hits else None


# The flat reading of a blind part is bounded (review h155: from every word, to the part's end,
# it took seconds for a 4 KiB line): a window of words from each of the first starts.
PAST_BOUNDS_STARTS, PAST_BOUNDS_WORDS = 32, 64


def _forbidden_past_bounds(forbid: list[_Rule], part: CommandPart) -> _Rule | None:
    """A forbid rule matching the words of a blind part from one naming the rule's program on:
    past the reader's bounds (wrappers 16 deep, a runner's eight possible starts, nesting three
    deep) the command is not followed, and the line would only be asked (review h154: `nice`
    eighteen times, then `rm -rf ~`). Read flat, so it may refuse an odd line a person would
    have been asked about; never allows. A start is a bare name or an absolute path: `src/dd`
    is a file an ordinary command names (review h155). Bounded: past the bounds, the line is
    asked."""
    # A line whose words hold an expansion is blind for that alone, and asked: its words read
    # flat would refuse everyday lines (`pytest "$T" -k dd`, `git diff "$BASE" -- dd`: review
    # h156). The reader's bounds are past for a line without one (`nice` eighteen times).
    # Only a part the reader stopped in (CommandPart.bounded): one blind for its input alone was
    # read in full, and its arguments are not commands (`xargs grep dd`, `find . -exec grep -H
    # mkfs {} +` were refused: review h158).
    if not part.bounded or not forbid or any("$" in w or "`" in w for w in part.words):
        return None
    programs = {r.words[0] for r in forbid if r.words}
    starts = [k for k in range(1, len(part.words)) if part.words[k].rpartition("/")[2] in programs
              and (part.words[k].startswith("/") or "/" not in part.words[k])]
    for k in starts[:PAST_BOUNDS_STARTS]:
        hit = _most_specific(forbid, CommandPart(words=part.words[k: k + PAST_BOUNDS_WORDS]))
        if hit:
            return hit
    return None


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

    # 1. forbid rules, in every part and every nested command: nothing overrides them; in a
    # part the reader did not follow to its end, also from each word naming a rule's program.
    for part in parts:
        hit = _most_specific(rules.forbid, part) or _forbidden_past_bounds(rules.forbid, part)
        if hit:
            return Decision("deny", hit.provenance("inside a nested command" if part.nested else None))

    live = grants.live("exec", run_id, profile, now) if grants else []
    # 2. deny grants, seen through wrappers like forbid rules.
    for part in parts:
        g = covering(live, "deny", part)
        if g:
            if consume and grants:
                grants.consume(g)
            return Decision("deny", g.provenance())

    # 3. per top-level part: allow grant, ask rule, allow rule, default.
    verdicts: list[tuple[str, Provenance, CommandPart]] = []
    used: list[Grant] = []
    for part in top:
        g = covering(live, "allow", part)
        if g:
            used.append(g)
            verdicts.append(("allow", g.provenance(), part))
            continue
        asked = _most_specific(rules.ask, part)
        allowed = _most_specific(rules.allow, part)
        globbed = None if asked else _glob_may_reach(rules, part)
        if asked:
            verdict: tuple[str, Provenance] = ("ask", asked.provenance())
        elif globbed:
            verdict = ("ask", globbed)
        elif allowed and not part.blind:
            verdict = ("allow", allowed.provenance())
        else:
            verdict = (rules.default, Provenance("default", rule_list=rules.default,
                                                 detail=_why_no_allow(rules, part)))
        if part.blind and verdict[0] == "allow":
            why = ("depends on a substitution or quoting the rules cannot see through"
                   if part.opaque else part.why_unseen and f"is asked: {part.why_unseen}"
                   or "runs what its words do not show (words "
                   "or a script read from its input, a path find fills in, a name hash -p moved)")
            verdict = ("ask", Provenance("default", rule_list="ask", detail=(
                f'"{canonical(part)}" {why}; a person must look')))
        verdicts.append((*verdict, part))
    # Nested commands (eval, sh -c) can make the whole ask, never allow.
    for part in parts:
        if part.nested:
            asked = _most_specific(rules.ask, part)
            if asked:
                verdicts.append(("ask", asked.provenance("inside a nested command"), part))
            elif globbed := _glob_may_reach(rules, part):
                verdicts.append(("ask", globbed, part))

    action = strictest(*(v[0] for v in verdicts))
    deciding = [v for v in verdicts if v[0] == action]
    # For an allow, name the grant if one was needed: it is the non-obvious reason. Else a part
    # decided by its own words before one asked for what an earlier part set up (unseen.py).
    prov = next((p for _, p, _ in deciding if p.kind == "grant"), None) or next(
        (p for _, p, part in deciding if not part.why_unseen or part.why_unseen not in (p.detail or "")),
        deciding[0][1])
    asking = tuple(dict.fromkeys(canonical(p) for a, _, p in verdicts if a == "ask" and not p.nested))
    if action == "allow" and consume and grants:
        for g in used:
            grants.consume(g)
    return Decision(action, prov, asking)



def ungrantable(command: str) -> frozenset[str] | None:
    """The parts of this command (as canonical() writes them) that no grant can ever cover: one
    whose words depend on a substitution or an expansion, or that runs or writes what its words
    do not show (a here-document, a script piped into a program: Grant.covers); None when the
    line cannot be read (no part can be granted then)."""
    try:
        return frozenset(canonical(p) for p in expand(command) if not p.nested and (
            p.opaque or p.expands or p.unseen or p.heredocs or fed_code(p)))
    except ParseError:
        return None


# --- wiring help ---------------------------------------------------------------------------

def make_policy_eval(
    exec_rules_for: Callable[[str], ExecRules],
    grants: GrantTable,
    network_eval: Callable[[str, str, str], Decision] | None = None,
    clock: Callable[[], float] = time.time,
    consume: bool = True,
) -> Callable[[str, str, str, str], Decision]:
    """policy_eval(kind, subject, run_id, profile) for agent.sock: exec through rules and grants,
    network through network_eval(subject, run_id, profile) when given (the gate's rules, which
    should consult `grants` too), anything else through grants, then ask. Without consume, a
    look that decides nothing: no "once" grant is used up."""

    def evaluate(kind: str, subject: str, run_id: str, profile: str) -> Decision:
        now = clock()
        if kind == "exec":
            return evaluate_exec(subject, exec_rules_for(profile), grants,
                                 run_id=run_id, profile=profile, now=now, consume=consume)
        if kind == "network" and network_eval is not None:
            return network_eval(subject, run_id, profile)
        g = grants.match(kind, subject, run_id, profile, now, consume=consume)
        if g:
            return Decision("allow" if g.effect == "allow" else "deny", g.provenance())
        return Decision("ask", Provenance("default", rule_list="ask"), (subject,))

    return evaluate



