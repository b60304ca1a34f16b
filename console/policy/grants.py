"""Grants: a person's decision that outlives one request, with a scope, read by the grammar the
config's rules use (exec patterns by the command reader, network patterns by the gate's pattern
parser), and the table of live grants shared by policy evaluation and the inbox."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

from console.policy.execshape import CommandPattern, compile_pattern
from console.policy.hosts import (
    BadTarget,
    address_text,
    ip_literal,
    normalise_host,
    parse_connect_target,
)
from console.policy.netrules import Pattern, parse_pattern
from console.policy.parts import (
    ASSIGNMENT,
    CommandPart,
    ParseError,
    canonical,
    command_words,
    named_words_expand,
    redirections,
    write_targets,
)
from console.policy.protected_names import PROTECTED_NAMES
from console.policy.types import Provenance
from console.policy.unwrap import expand, unwrap_stages
from console.protocol import STANDING_SCOPES, new_id

GRANT_KINDS = ("exec", "network", "write", "custom")
SCOPES = ("once", "run", "timed", "profile", "global")
WEB_PORTS = (80, 443)  # the config's default `ports`, for callers that know no profile
MAX_TIMED_S = 7 * 24 * 3600


# Programs to which their standard input is data only (what they print from it is all they do
# with it): a grant may cover one fed by a pipe. Any other program may run what the pipe brings
# (`| python3`, `| node`, `| patch`, `| sqlite3`), which a grant, holding words only, never
# holds (review s30: one approval of `echo 'print(1)' | python3` allowed every later script).
# Not sed nor awk: `sed 's/.*/&/e'` and `awk '{system($0)}'` run what they read; nor less or
# more: a lesskey file (`~/.lesskey`, `-k F`, `LESSKEYIN`) sets LESSOPEN (review s31, helper 111).
DATA_FILTERS = frozenset({
    "cat", "tac", "head", "tail", "grep", "egrep", "fgrep", "rg", "sort", "uniq", "wc", "cut",
    "tr", "column", "fold", "nl", "fmt", "pr", "paste", "rev", "expand", "unexpand", "jq",
    "tee", "base64", "md5sum", "sha1sum", "sha256sum", "sha512sum", "xxd",
    "od", "hexdump", "strings", "true"})


def fed_code(part: CommandPart) -> bool:
    """Whether a part reads its standard input from a pipe and may run it or write it to a
    file: anything but a data filter of the system's, run by its name, writing nowhere (review
    s31, helper 107: `| ./cat`, `| PATH=dir cat`, a function named cat, `| sort
    --compress-program=python3` and `| tee Makefile` were granted by their words)."""
    return part.piped and _may_run_input(part)


# Standard input from a file, a here-string, or another descriptor: `< x.sql`, `<<<'.shell id'`,
# `<&3` (not /dev/null, `<&0` nor a closed `<&-`; here-documents are refused on their own).
_STDIN = re.compile(r"^0?(<|<<<|<>|<&[1-9][0-9]*)$")


def fed_by_redirection(part: CommandPart) -> bool:
    """Whether a part's standard input is a redirection that a program other than a data filter
    may run: a pattern grant never covers one (review h201: `--pattern "sqlite3 test.db"` asked
    for `sqlite3 test.db .shell id` and for `echo .shell id | sqlite3 test.db`, and allowed
    `sqlite3 test.db <<<'.shell id'` and `sqlite3 test.db < cmds.sql`)."""
    return any(_STDIN.match(op) and target != "/dev/null" for op, target in redirections(part)
               ) and _may_run_input(part)


def _may_run_input(part: CommandPart) -> bool:
    """Whether what a part reads on its standard input may be run or written to a file."""
    words = list(command_words(part))
    stages = unwrap_stages(words)
    program = stages[-1] if stages else []
    if not program or part.functions or write_targets(part) or part.line_diverts or any(
            op.rsplit("&", 1)[-1].isdigit() and int(op.rsplit("&", 1)[-1]) > 2
            for op, _ in redirections(part) if ">&" in op):  # `>&3`: a file opened before
        return True  # (any function the line defines: `/bin/cat() {...}` is named so too)
    name = words[len(words) - len(program)]  # as written: unwrap_stages reads `./cat` as cat
    if "/" in name and name.rsplit("/", 1)[0] not in _SYSTEM_BIN:
        return True
    before = words[: len(words) - len(program)]  # `PATH=dir cat`, `env PATH=dir cat`
    if any(ASSIGNMENT.match(w) for w in before):
        return True
    base = name.rsplit("/", 1)[-1]
    return base not in DATA_FILTERS or _filter_writes_or_runs(base, program[1:])


_SYSTEM_BIN = ("/bin", "/usr/bin", "/usr/local/bin")  # root's folders: the agent writes none


def _filter_writes_or_runs(name: str, args: list[str]) -> bool:
    """A data filter's options that write a file or run a program: tee's files, sort's -o and
    --compress-program, uniq's output file, xxd -r's, rg's --pre."""
    end = args.index("--") if "--" in args else len(args)  # after `--`, `-d/../F` is a file
    options = [a for a in args[:end] if a.startswith("-") and a != "-"]
    files = [a for a in args[:end] if not a.startswith("-") or a == "-"] + args[end + 1 :]
    if name == "tee":
        return any(f != "-" for f in files)
    if name == "sort":
        return any(o.startswith(("--o", "--co")) or (not o.startswith("--") and "o" in o) for o in options)
    if name == "uniq":
        return len(files) > 1
    if name == "xxd":
        return len(files) > 1 or any(not o.startswith("--") and "r" in o for o in options)
    if name == "rg":
        return any(o.startswith("--pre") for o in options)
    return False


# PROTECTED_NAMES (protected_names.py): a folder's grant never covers a path through one of
# them, made below it, in any case (review h195: `Write /workspace/src/*` let Codex's
# apply_patch write `src/.git/config` with a core.fsmonitor and `src/.claude/settings.json`).


def prefix_excludes(subject: str) -> bool:
    """Whether a file request is one no allow pattern ending in "*" covers: a path with a ".."
    segment, or through a protected name (PROTECTED_NAMES); a person is asked for it."""
    words = re.split(r"[/\s]", subject)  # the landing's names and the asked-as path's too
    return ".." in subject.split("/") or any(w.casefold() in PROTECTED_NAMES for w in words)


@dataclass(frozen=True)
class Scope:
    kind: str  # once | run | timed | profile | global
    seconds: float | None = None  # for timed

    @property
    def standing(self) -> bool:
        """Past this run and this while: a rule saved to the owner's config, or a grant over
        every run until the daemon stops. The daemon owner's alone to make (review h179)."""
        return self.kind in STANDING_SCOPES


_DURATION = re.compile(r"^([0-9]+)([smhd])$")
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
        # A long number is out of range, not unknown (h192), and is never made an int.
        seconds = int(m.group(1)) * _UNITS[m.group(2)] if len(m.group(1)) <= 7 else 0
        if 0 < seconds <= MAX_TIMED_S:
            return Scope("timed", float(seconds))
        raise ValueError(f'scope "{_said(word)}": a timed grant lasts between 1s and 7d')
    raise ValueError(f'unknown scope "{_said(word)}": use once, run, a duration like 10m or 2h, '
                     "profile or global")


def _said(word: str) -> str:
    """A scope word as an error repeats it: whole up to 40 characters."""
    return word if len(word) <= 40 else f"{word[:40]}... ({len(word)} characters)"


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
    # The `cd`s an exact grant's command was approved after (CommandPart.cd_context, read by
    # reserved.CdContexts; None without one): `make` approved after `cd src &&` is not `make`
    # at the top, nor after `(cd src);` (review s31, helpers 110 to 113).
    context: str | None = None

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
        allow grants cover exactly the command, or as a pattern its words plus more. Never a
        part with a substitution (its words are not what runs), nor one that runs or writes
        what its words do not show: a here-document's body, a script piped into a shell
        (review s30: one approval of `bash <<'EOF'` with a harmless body, or of `cat x | bash`,
        allowed every later body or script for the grant's scope)."""
        pattern = self.compiled
        if pattern is None:
            return False
        if self.effect == "deny":
            return pattern.reaches(part)
        if part.opaque or part.unseen or part.heredocs or fed_code(part):  # a pattern holds none
            return False
        if self.exact:  # `rm ./*` is not the `rm './*'` a person approved, nor `~` their '~'
            return not part.expands and part.cd_context == self.context and pattern.is_exactly(part)
        if named_words_expand(part, len(pattern.program_words)) or fed_by_redirection(part):
            return False
        return pattern.allows(part)

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
        # write / custom: exactly the subject a person saw (a path may end in "*"); a pattern a
        # person typed with a final "*" is a prefix, which allows nothing with a ".." segment,
        # nor a file in a protected place (a git folder, an agent's config) made below it.
        if not self.exact and self.pattern.endswith("*"):
            return subject.startswith(self.pattern[:-1]) and (
                self.effect == "deny" or not prefix_excludes(subject))
        return subject == self.pattern

    def provenance(self) -> Provenance:
        return Provenance(
            "grant", rule=self.pattern, rule_list=self.effect, grant_id=self.id,
            scope=self.scope, expires_at=self.expires_at, person=self.decided_by,
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def covering(live: Sequence[Grant], effect: str, part: CommandPart) -> Grant | None:
    """The first of these live exec grants with this effect that covers the part: the one look
    evaluate_exec and the inbox's answer to a pending request both make."""
    return next((g for g in live if g.effect == effect and g.covers(part)), None)


def new_grant(
    kind: str, pattern: str, effect: str, scope: str | Scope, *, run_id: str | None,
    profile: str | None, decided_by: str | None, now: float | None = None, exact: bool = True,
    context: str | None = None,
) -> Grant:
    """A grant for a scope word ("run", "10m"...), bound to the run or profile it came from. A
    network pattern is kept in its one spelling (punycode, lower case, canonical address), as a
    rule is written: kept as typed, `pаypal.invalid` (a Cyrillic а) was listed as reading
    paypal.invalid while it covers xn--pypal-4ve.invalid (review h166). Raises ValueError."""
    now = time.time() if now is None else now
    if kind == "network":
        pattern = canonical_network_pattern(parse_pattern(pattern))
    sc = scope if isinstance(scope, Scope) else parse_scope(scope)
    return Grant(
        id="g" + new_id(5),
        kind=kind, pattern=pattern, effect=effect, scope=sc.kind,
        run_id=run_id if sc.kind in ("once", "run", "timed") else None,
        profile=profile if sc.kind == "profile" else None,
        expires_at=now + sc.seconds if sc.seconds else None,
        decided_by=decided_by, created_at=now, exact=exact, context=context,
    )


class GrantTable:
    """The live grants, shared by policy evaluation and the approvals inbox."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._grants: dict[str, Grant] = {}
        self._clock = clock
        self._watchers: list[Callable[[Grant | None], None]] = []

    def watch(self, watcher: Callable[[Grant | None], None]) -> None:
        """watcher(grant) once a grant is made, watcher(None) once grants are taken away
        (revoked, their run over, their time found up); called on whichever thread changed the
        table. A "once" grant used up by its request is not announced: what it allowed stands."""
        self._watchers.append(watcher)

    def _changed(self, made: Grant | None = None) -> None:
        for watcher in self._watchers:
            watcher(made)

    def add(self, grant: Grant) -> Grant:
        self._grants[grant.id] = grant
        self._changed(grant)
        return grant

    def trial(self, extra: Sequence[Grant]) -> GrantTable:
        """A copy holding these grants too, to ask what a decision would answer before it is
        made; this table is left as it is."""
        table = GrantTable(self._clock)
        table._grants = {**self._grants, **{g.id: g for g in extra}}
        return table

    def revoke(self, grant_id: str) -> Grant | None:
        grant = self._grants.pop(grant_id, None)
        if grant is not None:
            self._changed()
        return grant

    def consume(self, grant: Grant) -> None:
        """A "once" grant is used up by the request it answered; other scopes stay."""
        if grant.scope == "once":
            self._grants.pop(grant.id, None)

    def expire(self, now: float | None = None) -> list[Grant]:
        now = self._clock() if now is None else now
        gone = [g for g in self._grants.values() if g.expires_at is not None and now >= g.expires_at]
        for g in gone:
            del self._grants[g.id]
        if gone:
            self._changed()
        return gone

    def end_run(self, run_id: str) -> list[Grant]:
        gone = [g for g in self._grants.values() if g.run_id == run_id]
        for g in gone:
            del self._grants[g.id]
        if gone:
            self._changed()
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
        # A range inside a translator's /96 names its IPv4 part dotted, as its addresses are
        # (`64:ff9b::93.184.215.0/120`, not `64:ff9b::5db8:d700/120`: review h169).
        dotted = net.prefixlen == net.max_prefixlen or (net.version == 6 and net.prefixlen > 96)
        text = address_text(net.network_address) if dotted else str(net.network_address)
        text += "" if net.prefixlen == net.max_prefixlen else f"/{net.prefixlen}"
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


def grant_to_rule(grant: Grant) -> str:
    """The rule text a profile grant becomes in the config file: for exec, its command as the
    reader read it, redirections as such (h196: quoted as words, `make 2>&1` was saved as
    `make '2>&1'`, a command passing make the text `2>&1`, never the one approved)."""
    if grant.kind == "exec" and grant.compiled is not None:
        return canonical(grant.compiled.part)
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


