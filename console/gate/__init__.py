"""The network gate: the one way out of a sandbox (see DESIGN.md, Processes and Policy).

- (the destinations and patterns it decides on live in console/policy: hosts.py, netrules.py)
- proxy.py   the per-run forward proxy (CONNECT + absolute-form HTTP/1.1)
- own.py     this machine's own addresses (denied as loopback is, unless a rule names them)
- usage.py   token usage read from inference responses as they pass
- http1.py, tls.py, splice.py   HTTP framing, ClientHello SNI, tunnel pumps (splice(2) when
  both ends are the gate's own sockets)
- sockio.py  the gate's own listeners and socket streams (no asyncio transport per connection)
"""

from console.gate.proxy import Gate, GateLimits, NetAsk, Verdict, dial_address, system_resolver
from console.gate.usage import Usage, UsageMeter
from console.policy.hosts import (
    BadTarget,
    Target,
    is_globally_routable,
    normalise_host,
    parse_absolute_url,
    parse_connect_target,
)
from console.policy.netrules import BadPattern, NetMatch, NetworkRules, Pattern, parse_pattern

__all__ = [
    "BadPattern",
    "BadTarget",
    "Gate",
    "GateLimits",
    "NetAsk",
    "NetMatch",
    "NetworkRules",
    "Pattern",
    "Target",
    "Usage",
    "UsageMeter",
    "Verdict",
    "dial_address",
    "is_globally_routable",
    "normalise_host",
    "parse_absolute_url",
    "parse_connect_target",
    "parse_pattern",
    "system_resolver",
]
