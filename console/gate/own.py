"""This machine's own addresses, which the gate treats as the loopback they are.

A connection to an address of one of this machine's interfaces never leaves it: it reaches
every service listening on 0.0.0.0 or [::] (a dev server, a database, sshd), as 127.0.0.1
would. The address tables (policy/hosts.py) deny loopback and private ranges, but a machine
with a global address (a server's public IPv4, a laptop's IPv6) is reached by that address
too, and a name resolving to it (any wildcard DNS service) passed as a global destination
(review s20). The kernel says which addresses are local: /proc/net/if_inet6 and the local
routes of /proc/net/ipv6_route (IPv6), the LOCAL routes of /proc/net/fib_trie (IPv4); routes
count whole, as the kernel answers on every address of a `ip route add local ... dev lo` range.
Read at most once a second, so an address added while the daemon runs is seen.
"""

from __future__ import annotations

import ipaddress
import re
import time

from console.policy import Decision
from console.policy.hosts import IPAddress, Target, address_text, embedded_ipv4
from console.policy.netrules import NetMatch, NetworkRules
from console.policy.network import provenance_of

__all__ = ["OwnAddresses", "but_this_machine", "own_addresses", "this_machine"]

IF_INET6 = "/proc/net/if_inet6"
IPV6_ROUTE = "/proc/net/ipv6_route"
FIB_TRIE = "/proc/net/fib_trie"
_RTF_LOCAL = 0x80000000  # an ipv6_route line's flag: a route of the local table
_FRESH_FOR = 1.0  # seconds an answer is reused
_LOCAL_ROUTE = re.compile(r"/(\d{1,2}) \S+ LOCAL\b")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class OwnAddresses:
    """The networks this machine answers on, as the kernel lists them."""

    __slots__ = ("networks",)

    def __init__(self, networks: tuple[Network, ...]) -> None:
        self.networks = networks

    def covers(self, ip: IPAddress) -> IPAddress | None:
        """The address of this machine that `ip` is or wraps (IPv4-mapped, NAT64...), or None."""
        for a in (ip, *embedded_ipv4(ip)):
            if any(a.version == n.version and a in n for n in self.networks):
                return a
        return None


def _read() -> OwnAddresses:
    networks: list[Network] = []
    with open(IF_INET6) as fh:
        for line in fh:
            hexaddr = line.split(maxsplit=1)[0] if line.strip() else ""
            if len(hexaddr) == 32:
                networks.append(ipaddress.IPv6Network(int(hexaddr, 16)))
    with open(IPV6_ROUTE) as fh:
        for line in fh:
            f = line.split()
            if len(f) >= 9 and int(f[8], 16) & _RTF_LOCAL:
                networks.append(ipaddress.IPv6Network((int(f[0], 16), int(f[1], 16))))
    with open(FIB_TRIE) as fh:
        leaf: str | None = None
        for line in fh:
            text = line.strip()
            if text.startswith("|-- "):
                leaf = text[4:]
            elif leaf is not None and (m := _LOCAL_ROUTE.search(text)):
                networks.append(ipaddress.IPv4Network(f"{leaf}/{m.group(1)}", strict=False))
    return OwnAddresses(tuple(dict.fromkeys(networks)))


_cache: tuple[float, OwnAddresses] | None = None


def own_addresses() -> OwnAddresses:
    """This machine's addresses, read again once the last reading is a second old. Raises
    OSError when the kernel's lists cannot be read (the gate then refuses: fail closed)."""
    global _cache
    now = time.monotonic()
    if _cache is None or now - _cache[0] >= _FRESH_FOR:
        fresh = _read()  # the same object while nothing changed: a verdict kept for it holds
        _cache = (now, _cache[1] if _cache is not None and _cache[1].networks == fresh.networks else fresh)
    return _cache[1]


def this_machine(rules: NetworkRules, target: Target, addrs: list[IPAddress]) -> NetMatch | None:
    """A deny when an address is one of this machine's own (reached as loopback is) and no
    allow rule names it on this port; or when which addresses are this machine's cannot be
    read (fail closed). The gate and `policy check` both ask it after the rules allowed."""
    try:
        own = own_addresses()
    except OSError as exc:
        return NetMatch("deny", None, "this machine's own addresses could not be read "
                        f"({exc}), so whether {target.host} is one is unknown", basis="not-routable")
    for ip in addrs:
        if own.covers(ip) is None or rules.named(ip, target.port) is not None:
            continue
        shown = address_text(ip)
        what = target.host if target.ip is not None else f"{target.host} resolves to {shown}"
        return NetMatch("deny", None, f"{what}, an address of this machine itself (reached "
                        "as loopback is); only an allow rule naming that IP (and port) "
                        "opens it", basis="not-routable", address=shown)
    return None


def but_this_machine(decision: Decision, rules: NetworkRules, target: Target,
                     addrs: list[IPAddress]) -> Decision:
    """A rules decision (decide_network) with this_machine applied, as the gate applies it:
    for `policy check` and `ph-ask net`, which answer what the gate will do."""
    mine = this_machine(rules, target, addrs) if addrs and decision.action != "deny" else None
    return decision if mine is None else Decision("deny", provenance_of(mine))
