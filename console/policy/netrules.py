"""Network rules: patterns from the config, and the decision for one destination.

Patterns (docs: DESIGN.md, Policy):

    example.com            exactly that host
    *.example.com          any subdomain at any depth, not the apex
    **.example.com         the apex and any subdomain
    example.com:8080       a host pattern with a port (any of the above forms)
    10.1.2.3  [::1]        IP literals; `10.1.2.3:8000`, `[::1]:8000` with a port
    10.1.2.0/24  fd00::/8  CIDRs; `10.1.2.0/24:443`, `[fd00::/8]:443` with a port

Refused when the config loads: `*`, `**`, `*.com` (a wildcard over a single label), `a*.b.com`
(a wildcard anywhere but a whole leading label), empty text, bad characters, CIDRs with host
bits set. Hosts in patterns are normalised exactly like targets, so `EXAMPLE.com.` and
`example.com` are the same rule.

A rule's port scope is asymmetric on purpose: an allow rule without a port covers only the
profile's `ports` (opening `example.com` should not open its SSH port), a deny rule without a
port covers every port (closing a host must close all of it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from console.policy.hosts import (
    BadTarget,
    IPAddress,
    address_text,
    embedded_ipv4,
    ip_literal,
    is_globally_routable,
    loopback_addresses,
    normalise_host,
    parse_port,
)

Action = Literal["allow", "deny", "ask"]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAPPED = 0xFFFF << 32  # ::ffff:0:0/96, IPv4-mapped IPv6
# A rule as given to NetworkRules: the pattern text, or (pattern text, source label such as
# "config.toml:12") so a decision can say which file and line made it.
RuleSpec = str | tuple[str, str]

__all__ = [
    "Action",
    "BadPattern",
    "NetMatch",
    "NetworkRules",
    "Pattern",
    "RuleSpec",
    "parse_pattern",
]


class BadPattern(ValueError):
    """A network pattern the config may not contain; the reason says what to write instead."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Pattern:
    """One parsed pattern. `kind` is exact | sub (`*.`) | tree (`**.`) | net (IP or CIDR)."""

    text: str
    kind: Literal["exact", "sub", "tree", "net"]
    host: str = ""
    network: IPNetwork | None = None
    port: int | None = None
    source: str | None = None

    @property
    def is_address(self) -> bool:
        return self.kind == "net"

    def matches_host(self, host: str) -> bool:
        """Host-name match on label boundaries (never on IP literals)."""
        if self.kind == "exact":
            return host == self.host
        if self.kind == "sub":
            return host.endswith("." + self.host)
        if self.kind == "tree":
            return host == self.host or host.endswith("." + self.host)
        return False

    def matches_address(self, ip: IPAddress, *, wrapped: bool) -> bool:
        """Address match. With `wrapped`, IPv4 addresses inside IPv6 wrappers count too (used
        for deny, so `[::ffff:1.2.3.4]` cannot slip past a rule naming 1.2.3.4); without it
        only the IPv4-mapped form does, which is the same socket destination."""
        if self.network is None:
            return False
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            if wrapped:
                candidates += embedded_ipv4(ip)
            elif ip.ipv4_mapped is not None:
                candidates.append(ip.ipv4_mapped)
        else:  # a rule written in the mapped form ([::ffff:1.2.3.4]) names the same destination
            candidates.append(ipaddress.IPv6Address(_MAPPED | int(ip)))  # ::ffff:ip, unparsed
        return any(c.version == self.network.version and c in self.network for c in candidates)

    def covers_port(self, port: int, default_ports: Sequence[int], *, deny: bool) -> bool:
        if self.port is not None:
            return port == self.port
        return deny or port in default_ports

    def label(self) -> str:
        return f"{self.text} ({self.source})" if self.source else self.text


def _split_port(text: str, rest: str) -> int | None:
    if not rest:
        return None
    if not rest.startswith(":"):
        raise BadPattern(f"{text!r}: unexpected {rest!r} after the address")
    try:
        return parse_port(rest[1:])
    except BadTarget as exc:
        raise BadPattern(f"{text!r}: {exc.reason}") from None


def _network(text: str, value: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise BadPattern(f"{text!r}: {exc} (a CIDR must name its network address)") from None


def parse_pattern(text: str, source: str | None = None) -> Pattern:
    """Parse one allow/deny pattern; raise BadPattern with a reason a person can act on."""
    raw = text
    text = text.strip()
    if not text:
        raise BadPattern("empty pattern")
    if any(ch.isspace() for ch in text):
        raise BadPattern(f"{raw!r}: whitespace inside a pattern")
    # Bracketed IPv6 (or IPv6 CIDR), with an optional port.
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise BadPattern(f"{text!r}: unbalanced bracket")
        port = _split_port(text, text[close + 1 :])
        inner = text[1:close]
        if "%" in inner:
            raise BadPattern(f"{text!r}: zone identifiers are not allowed")
        net = _network(text, inner)
        if net.version != 6:
            raise BadPattern(f"{text!r}: brackets are for IPv6; write IPv4 without them")
        return Pattern(text, "net", network=net, port=port, source=source)
    # Bare IPv6 or IPv6 CIDR (no port possible without brackets).
    if text.count(":") >= 2:
        if "%" in text:
            raise BadPattern(f"{text!r}: zone identifiers are not allowed")
        return Pattern(text, "net", network=_network(text, text), source=source)
    # IPv4 CIDR, optional :port after the prefix length.
    if "/" in text:
        addr, _, rest = text.partition("/")
        length, _, port_text = rest.partition(":")
        port = _split_port(text, ":" + port_text) if ":" in rest else None
        if not length.isascii() or not length.isdigit():
            raise BadPattern(f"{text!r}: prefix length must be digits")
        return Pattern(text, "net", network=_network(text, f"{addr}/{length}"), port=port,
                       source=source)
    host, colon, port_text = text.partition(":")
    port = _split_port(text, colon + port_text) if colon else None
    kind: Literal["exact", "sub", "tree"] = "exact"
    if host.startswith("**."):
        kind, host = "tree", host[3:]
    elif host.startswith("*."):
        kind, host = "sub", host[2:]
    if "*" in host:
        raise BadPattern(f"{text!r}: a wildcard may only be a whole leading label "
                         "(*.example.com or **.example.com)")
    try:
        norm = normalise_host(host)
    except BadTarget as exc:
        raise BadPattern(f"{text!r}: {exc.reason}") from None
    try:
        ip = ipaddress.ip_address(norm)
    except ValueError:
        ip = None
    if ip is not None:
        if kind != "exact":
            raise BadPattern(f"{text!r}: wildcards do not apply to IP addresses; use a CIDR")
        return Pattern(text, "net", network=ipaddress.ip_network(ip), port=port, source=source)
    if kind != "exact" and "." not in norm:
        raise BadPattern(f"{text!r}: a wildcard over a single label ({norm}) would cover a whole "
                         "top-level domain; name the domain (*.example.com)")
    return Pattern(text, kind, host=norm, port=port, source=source)


@dataclass(frozen=True, slots=True)
class NetMatch:
    """The rules' verdict for one destination, before any person answers."""

    action: Action
    rule: str | None
    reason: str
    source: str | None = None
    # What decided: "rule" (a pattern), "default", or "not-routable" (with `address`).
    basis: Literal["rule", "default", "not-routable"] = "rule"
    address: str | None = None


def _parse_specs(specs: Iterable[RuleSpec], which: str) -> list[Pattern]:
    out = []
    for spec in specs:
        text, source = (spec, None) if isinstance(spec, str) else spec
        try:
            out.append(parse_pattern(text, source))
        except BadPattern as exc:
            where = f" ({source})" if source else ""
            raise BadPattern(f"{which} rule{where}: {exc.reason}") from None
    return out


class NetworkRules:
    """A profile's [network] table, compiled.

    `allow` and `deny` entries are pattern strings or `(pattern, source)` pairs; the source
    label (e.g. "config.toml:12") comes back in NetMatch.source and in recorded decisions.
    """

    def __init__(
        self,
        allow: Iterable[RuleSpec] = (),
        deny: Iterable[RuleSpec] = (),
        default: Action = "ask",
        ports: Iterable[int] = (80, 443),
    ) -> None:
        if default not in ("allow", "ask", "deny"):
            raise BadPattern(f"default must be allow, ask or deny (got {default!r})")
        self.allow = _parse_specs(allow, "allow")
        self.deny = _parse_specs(deny, "deny")
        self.default: Action = default
        self.ports = tuple(ports)
        for p in self.ports:
            if not isinstance(p, int) or isinstance(p, bool) or not 1 <= p <= 65535:
                raise BadPattern(f"ports: {p!r} is not a port number 1-65535")

    def named(self, ip: IPAddress, port: int) -> Pattern | None:
        """The allow rule naming this IP (or a CIDR holding it) on this port, if any: only such
        a rule opens an address that is not a destination on the internet. (The port first:
        the gate asks this for every connection, and it is the cheap half.)"""
        for rule in self.allow:
            if rule.is_address and rule.covers_port(port, self.ports, deny=False) and \
                    rule.matches_address(ip, wrapped=False):
                return rule
        return None

    def decide(self, host: str, port: int, addresses: Sequence[IPAddress] | None) -> NetMatch:
        """Decide for a normalised host and port, and the addresses the gate would dial.

        `addresses` is None before resolution (host rules only: lets the gate deny a name
        without ever looking it up; a loopback name's addresses are known without a lookup and
        judged); for an IP literal pass `[ip]`. Order: deny rules (host or
        any address, any wrapper), then non-routable addresses (denied unless an allow IP/CIDR
        rule covers that address and port), then allow rules (a host rule, or IP rules that
        cover every address), then the default.
        """
        literal = ip_literal(host)
        if addresses is not None:
            addrs = list(addresses)
        else:
            addrs = [literal] if literal else loopback_addresses(host) or []
        for rule in self.deny:
            if not rule.covers_port(port, self.ports, deny=True):
                continue
            if (literal is None and rule.matches_host(host)) or any(
                rule.matches_address(a, wrapped=True) for a in addrs
            ):
                return NetMatch("deny", rule.text, f"denied by rule {rule.label()}", rule.source)
        for a in addrs:
            if not is_globally_routable(a) and self.named(a, port) is None:
                shown = address_text(a)
                what = host if literal is not None else f"{host} resolves to {shown}, which"
                return NetMatch("deny", None, f"{what} is not a globally routable address; only "
                                "an allow rule naming that IP (and port) opens it",
                                basis="not-routable", address=shown)
        for rule in self.allow:
            if rule.is_address or literal is not None:
                continue
            if rule.matches_host(host) and rule.covers_port(port, self.ports, deny=False):
                return NetMatch("allow", rule.text, f"allowed by rule {rule.label()}",
                                rule.source)
        if addrs:
            named = [self.named(a, port) for a in addrs]
            if all(named):
                first = named[0]
                assert first is not None
                return NetMatch("allow", first.text, f"allowed by rule {first.label()}",
                                first.source)
        return NetMatch(self.default, None, f"no rule matches; the default is {self.default}",
                        basis="default")

    def suggestion(self, host: str, port: int) -> str:
        """The allow pattern a person would add to open exactly this destination."""
        text = f"[{host}]" if ":" in host else host
        return text if port in self.ports and ip_literal(host) is None else f"{text}:{port}"
