"""Destinations as the gate sees them: parse, normalise, classify.

Everything an agent names as a destination is hostile input. The gate must reach the same
verdict as the library that will later dial the name, so parsing here is deliberately narrower
than what browsers or `urllib` accept: anything two parsers could read differently (a backslash,
a percent sign, a stray colon, `127.1`, a port written `4_43`) is refused outright rather than
guessed at. Host names are normalised once (UTS 46 with the `idna` package, lower case, one
trailing dot dropped, strict LDH check) so a rule can never be bypassed by spelling.

Addresses are classified with our own tables instead of `ipaddress.is_global`, which (on the
Python versions we support) calls NAT64 and 6to4 wrappers of loopback "global" and misses the
IPv4-mapped case unless unwrapped.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

import idna

from console.text import clipped

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
REASON_SHOWN = 300  # characters of a refusal's reason (which may quote the target) kept

__all__ = [
    "BadTarget",
    "IPAddress",
    "address_text",
    "ip_literal",
    "Target",
    "embedded_ipv4",
    "is_globally_routable",
    "loopback_addresses",
    "normalise_host",
    "parse_connect_target",
    "parse_absolute_url",
    "parse_port",
]


class BadTarget(ValueError):
    """A destination that is malformed; the gate answers 400 and never dials it."""

    def __init__(self, reason: str) -> None:
        # The reasons quote what was written, whose length the sandbox chooses; a refusal is
        # recorded (review s33: 117 KB a row, 20 rows a second).
        reason = clipped(reason, REASON_SHOWN)
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Target:
    """A normalised destination: `host` is an ASCII host name, or an IP address's canonical
    text (IPv6 without brackets)."""

    host: str
    port: int

    @property
    def ip(self) -> IPAddress | None:
        """The address when the host is an IP literal, else None."""
        return ip_literal(self.host)

    @property
    def authority(self) -> str:
        """`host:port` as written in a CONNECT line or a rule (`[v6]:port` for IPv6)."""
        return f"{self.host_text}:{self.port}"

    @property
    def host_text(self) -> str:
        """The host as it appears in a URL or Host header (brackets around IPv6)."""
        return f"[{self.host}]" if ":" in self.host else self.host


# Characters that never belong in an authority we accept, checked before any parsing so no
# later step (IDNA mapping, URL splitting) gets a chance to interpret them: those below, every
# control character and DEL. Looked for by one regex search, not a Python step a character:
# a request line is up to a head's 32 KiB, and a connection's first step (its head, parsed)
# runs inside the accept, 64 connections a burst (review h157: 31 KiB URLs on 100 connections
# held the daemon's loop half a second).
_BAD_AUTHORITY_CHAR = re.compile(r'[%\\ /?#@"<>^`{|}\x00-\x1f\x7f]')
_BAD_URL_CHAR = re.compile(r"[\\ \x00-\x1f\x7f]")
# Characters of a host as written, at most: its normal form has at most 253, and only code
# points UTS 46 drops (a soft hyphen, joiners) make a longer spelling shrink to that. Longer
# is refused before the IDNA mapping, which costs a few milliseconds per 10,000 characters.
HOST_CHARS_MOST = 1024
_DIGITS = re.compile(r"[0-9]{1,5}")  # not \d: that matches any Unicode digit
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PLAIN = re.compile(r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.?")
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
_DOTTED_QUAD = re.compile(r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
                          r"(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}")


# IPv6 blocks whose last 32 bits are an IPv4 address a translator reaches, written dotted.
_DOTTED_TAIL = (("64:ff9b::", ipaddress.IPv6Network("64:ff9b::/96")),
                ("::ffff:0:", ipaddress.IPv6Network("::ffff:0:0:0/96")))


@functools.lru_cache(maxsize=4096)
def ip_literal(host: str) -> IPAddress | None:
    """The address a normalised host spells, or None for a name (cached: asked per request)."""
    if not host or not (host[0].isdigit() or ":" in host):
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def address_text(ip: IPAddress) -> str:
    """An address as people read it and the gate writes it (targets, cards, refusals, records):
    its canonical text, but an IPv4-mapped IPv6 address with its IPv4 dotted, `::ffff:8.8.8.8`.
    Python 3.11 writes `::ffff:808:808`, which no one reading an approval takes for 8.8.8.8
    (review s23). The translators' wrappers likewise (RFC 6052 2.4): `64:ff9b::93.184.215.14`,
    `::ffff:0:93.184.215.14`, which reach that IPv4 address where a NAT64 or SIIT translator is
    (review h166: the card asked about `[64:ff9b::5db8:d70e]:443`)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"::ffff:{ip.ipv4_mapped}"
        for prefix, net in _DOTTED_TAIL:
            if ip in net:
                return f"{prefix}{ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)}"
    return ip.compressed


def parse_port(text: str) -> int:
    """A port: 1-5 ASCII digits, 1..65535. `int()` would accept `4_43`, `+443` and
    Unicode digits, which a second parser might read differently."""
    if not _DIGITS.fullmatch(text):
        raise BadTarget(f"port {text!r} is not 1-5 ASCII digits")
    port = int(text)
    if not 1 <= port <= 65535:
        raise BadTarget(f"port {port} is out of range 1-65535")
    return port


def _check_authority_chars(text: str) -> None:
    bad = _BAD_AUTHORITY_CHAR.search(text)
    if bad is not None:
        raise BadTarget(f"character {bad.group()!r} is not allowed in a destination")


def _normalise_ipv6(text: str) -> str:
    try:
        return address_text(ipaddress.IPv6Address(text))
    except ValueError:
        raise BadTarget(f"[{text}] is not an IPv6 address") from None


def normalise_host(host: str) -> str:
    """The one spelling of a host that rules are matched against.

    IDNA to ASCII with UTS 46 mapping (`idna` package: Python's built-in codec is IDNA 2003 and
    lets NUL through), lower case, one trailing dot dropped, every label strict LDH. Canonical
    dotted-quad IPv4 and bracketed IPv6 become their canonical text. Any other numeric-looking
    host (`127.1`, `2130706433`, `0177.0.0.1`, `0x7f.0.0.1`) is refused: resolvers read those
    as addresses, and we will not guess which.
    """
    if not host:
        raise BadTarget("empty host")
    if len(host) > HOST_CHARS_MOST:
        raise BadTarget(f"{host!r}: a host name longer than {HOST_CHARS_MOST} characters")
    _check_authority_chars(host)
    if host.startswith("["):
        if not host.endswith("]"):
            raise BadTarget(f"unbalanced bracket in {host!r}")
        return _normalise_ipv6(host[1:-1])
    if ":" in host or "[" in host or "]" in host:
        raise BadTarget(f"{host!r}: IPv6 addresses must be written in brackets")
    if _PLAIN.fullmatch(host) and "--" not in host:
        # Plain LDH ASCII: UTS 46 would only lower-case it, so skip the (slow) full mapping.
        # Anything else (non-ASCII, xn-- labels, "--" anywhere) takes the full path below.
        ascii_host = host.lower()
    else:
        try:
            ascii_host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            raise BadTarget(f"{host!r} is not a valid host name ({exc})") from None
        ascii_host = ascii_host.lower()
    if ascii_host.endswith("."):
        ascii_host = ascii_host[:-1]
    if not ascii_host:
        raise BadTarget("empty host")
    labels = ascii_host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # A name whose last label is numeric is an address to every resolver we know of.
        if _DOTTED_QUAD.fullmatch(ascii_host):
            return str(ipaddress.IPv4Address(ascii_host))
        raise BadTarget(f"{host!r} is a non-canonical IPv4 form; write it as a dotted quad")
    if len(ascii_host) > 253:
        raise BadTarget("host name longer than 253 characters")
    for label in labels:
        if not _LDH_LABEL.fullmatch(label):
            raise BadTarget(f"label {label!r} in {host!r} is not letters, digits and hyphens")
    return ascii_host


def parse_connect_target(text: str) -> Target:
    """A CONNECT request's authority-form target: `host:port` or `[v6]:port`, nothing else."""
    if not text:
        raise BadTarget("empty CONNECT target")
    _check_authority_chars(text)
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] != ":":
            raise BadTarget(f"{text!r}: expected [IPv6]:port")
        host, port_text = text[: close + 1], text[close + 2 :]
    else:
        if text.count(":") != 1:
            raise BadTarget(f"{text!r}: expected host:port with exactly one colon")
        host, port_text = text.split(":")
    return Target(normalise_host(host), parse_port(port_text))


# RFC 3986 appendix B, the reference splitter. Every URL parser that matters agrees with it on
# input that contains no backslash, whitespace or control characters, which we refuse first.
_URI = re.compile(r"^(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$", re.S)


def parse_absolute_url(url: str) -> tuple[Target, str]:
    """An absolute-form request target (`http://host[:port]/path?query`).

    Returns the target and the origin-form path with query to send upstream. Userinfo and
    fragment are split off the way RFC 3986 says (`http://a.com@b.com/` is b.com), and then
    dropped. Only `http` is accepted: TLS destinations go through CONNECT.
    """
    bad = _BAD_URL_CHAR.search(url)
    if bad is not None:
        raise BadTarget(f"character {bad.group()!r} is not allowed in a request URL")
    m = _URI.match(url)
    if m is None:  # pragma: no cover - the pattern matches every string
        raise BadTarget("unparseable URL")
    scheme, authority, path, query, _fragment = m.groups()
    if scheme is None or scheme.lower() != "http":
        raise BadTarget(f"only http:// URLs can be proxied here (got {scheme or 'no'} scheme); "
                        "use CONNECT for TLS")
    if not authority:
        raise BadTarget("URL has no host")
    if authority.count("@") > 1:
        raise BadTarget("more than one @ in the URL authority")
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise BadTarget("unbalanced bracket in URL host")
        host, rest = hostport[: close + 1], hostport[close + 1 :]
        if rest and not rest.startswith(":"):
            raise BadTarget("junk after ] in URL host")
        port_text = rest[1:] if rest else ""
    else:
        if hostport.count(":") > 1:
            raise BadTarget(f"{hostport!r}: too many colons in URL authority")
        host, _, port_text = hostport.partition(":")
    port = parse_port(port_text) if port_text else 80
    target = Target(normalise_host(host), port)
    origin = (path or "/") + (f"?{query}" if query is not None else "")
    if not origin.startswith("/"):
        raise BadTarget("URL path must start with /")
    if not origin.isascii():  # sent on as it came, it would be re-encoded: refused, never dialled
        raise BadTarget("the URL's path or query has characters outside ASCII: percent-encode "
                        "them (RFC 3986), as HTTP clients do")
    return target, origin


# --- address classification ------------------------------------------------------------------

_V4_NOT_GLOBAL = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8",        # "this network", unspecified
    "10.0.0.0/8",       # private
    "100.64.0.0/10",    # CGNAT (RFC 6598)
    "127.0.0.0/8",      # loopback
    "169.254.0.0/16",   # link-local, incl. cloud metadata 169.254.169.254
    "172.16.0.0/12",    # private
    "192.0.0.0/24",     # IETF protocol assignments
    "192.0.2.0/24",     # TEST-NET-1
    "192.88.99.0/24",   # 6to4 relay anycast (deprecated)
    "192.168.0.0/16",   # private
    "198.18.0.0/15",    # benchmarking
    "198.51.100.0/24",  # TEST-NET-2
    "203.0.113.0/24",   # TEST-NET-3
    "224.0.0.0/4",      # multicast
    "240.0.0.0/4",      # reserved, incl. broadcast
))
_V4_RANGES = tuple((int(n.network_address), int(n.broadcast_address)) for n in _V4_NOT_GLOBAL)
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_V6_NOT_GLOBAL = tuple(ipaddress.IPv6Network(n) for n in (
    "2001::/23",        # IETF protocol assignments (Teredo 2001::/32 is unwrapped first)
    "2001:db8::/32",    # documentation
    "3fff::/20",        # documentation (RFC 9637)
))
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT, RFC 2765
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")


def embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address wraps (mapped, SIIT, NAT64, 6to4, Teredo).

    A wrapper reaches (or may reach, through a translator or relay) the embedded address, so a
    check that only looks at the outer address is a bypass.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return []
    n = int(ip)
    low32 = ipaddress.IPv4Address(n & 0xFFFFFFFF)
    if ip in _MAPPED or ip in _TRANSLATED or ip in _NAT64:
        return [low32]
    if ip in _NAT64_LOCAL:
        # RFC 6052: a /48 prefix puts the address in bits 48-63 and 72-87 (skipping the u
        # octet); a /96 prefix inside the block puts it in the low 32 bits. Check both.
        hi = (n >> 64) & 0xFFFF
        lo = (n >> 48) & 0xFFFF
        return [low32, ipaddress.IPv4Address((hi << 16) | lo)]
    if ip in _SIX_TO_FOUR:
        return [ipaddress.IPv4Address((n >> 80) & 0xFFFFFFFF)]
    if ip in _TEREDO:
        server, client = ip.teredo or (low32, low32)
        return [server, client]
    return []


_LOOPBACK: tuple[IPAddress, ...] = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))


def loopback_addresses(host: str) -> list[IPAddress] | None:
    """The addresses of `localhost` and names under it, or None for any other host. They are
    loopback by definition (RFC 6761 6.3): the gate dials these without asking a resolver, so
    every decision about such a name (the gate's, `policy check`'s, agent.sock's) judges them,
    whatever /etc/hosts says."""
    if host == "localhost" or host.endswith(".localhost"):
        return list(_LOOPBACK)
    return None


def is_globally_routable(ip: IPAddress) -> bool:
    """Whether a connection to `ip` would leave this machine for the public internet.

    IPv6 wrappers of IPv4 are judged by what they wrap (every embedded address must be global).
    IPv6 is otherwise global only inside 2000::/3 minus special-purpose blocks: everything
    outside it is loopback, ULA, link-local, multicast or reserved.
    """
    inner = embedded_ipv4(ip)
    if inner:
        return all(is_globally_routable(v4) for v4 in inner)
    if isinstance(ip, ipaddress.IPv4Address):
        n = int(ip)
        return not any(lo <= n <= hi for lo, hi in _V4_RANGES)
    if ip.scope_id is not None:
        return False
    if ip not in _V6_GLOBAL_UNICAST:
        return False
    return not any(ip in net for net in _V6_NOT_GLOBAL)
