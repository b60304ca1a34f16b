"""Types and plumbing the gate's parts share: limits, the ask/verdict pair, resolving and
dialling exactly one checked address, and the refusal a client is answered with."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import socket
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from console.gate.sockio import connect_stream
from console.gate.splice import Activity
from console.policy.grants import canonical_network_pattern
from console.policy.hosts import (
    IPAddress,
    Target,
    address_text,
    ip_literal,
    normalise_host,
    parse_absolute_url,
    parse_connect_target,
)
from console.policy.netrules import BadPattern, NetMatch, NetworkRules, parse_pattern
from console.text import clipped, destination

if TYPE_CHECKING:
    from console.config.bounds import FdBudget

__all__ = [
    "Asker", "Conn", "Dialer", "GateLimits", "NetAsk", "Recorder", "Refusal", "Resolver",
    "Stands", "TurnAway", "Upstream", "Verdict", "Veto", "denial", "dial_address", "dial_failure", "host_header",
    "header_spelling", "ip_text", "lookups_in_threads", "meter_host",
    "read_absolute", "read_connect", "request_sent", "shown_target", "system_resolver",
    "READ_LIMIT",
]

READ_LIMIT = 64 * 1024
REASONS = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 431: "Request Header Fields Too Large",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
           505: "HTTP Version Not Supported"}


@dataclass(frozen=True, slots=True)
class GateLimits:
    """Per-run limits. `max_tunnels` counts open upstream connections (tunnels and HTTP)."""

    max_tunnels: int = 64
    max_header_bytes: int = 32 * 1024
    max_connections: int = 128  # client connections open at once (gate.sock and the bridge)
    head_timeout: float = 10.0  # to send one whole request head
    lookups_per_second: float = 20.0  # DNS lookups of this run (a burst of as many)
    lookups_at_once: int = 4  # threads of this run's own for lookups (lookups_in_threads)
    idle_timeout: float = 300.0
    connect_timeout: float = 10.0
    ask_timeout: float = 900.0  # a backstop; the daemon's approval_timeout normally answers first


@dataclass(frozen=True, slots=True)
class NetAsk:
    """What the gate asks the daemon's inbox about one destination."""

    run_id: str
    host: str
    port: int
    addresses: tuple[str, ...]
    method: str
    target: str
    reason: str
    suggestion: str  # the allow pattern that would open exactly this destination


@dataclass(frozen=True, slots=True)
class Verdict:
    """The inbox's answer; `provenance` (who, which grant, timeout...) is recorded as is."""

    allow: bool
    provenance: dict[str, Any] = field(default_factory=dict)


Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
Dialer = Callable[[IPAddress, int, float],
                  Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
Recorder = Callable[[str, dict[str, Any]], Awaitable[None] | None]
Asker = Callable[[NetAsk], Awaitable[Verdict]]
# (host, port, the addresses about to be dialled) -> a deny Verdict (a person's deny grant
# covers the host or one of them), or None: the daemon's grants, for a destination the rules
# leave to a person, asked after the lookup (a yes to a name came before it).
Veto = Callable[[str, int, list[IPAddress]], Verdict | None]
# (the gate's rules now, host, port, the address connected, the provenance of the yes it was
# opened on) -> whether that yes still stands (with the daemon's grants now): asked again of
# every open connection a person or a grant allowed, so none outlives its grant (review h143).
Stands = Callable[[NetworkRules, str, int, IPAddress, dict[str, Any]], bool]


async def system_resolver(host: str, port: int,
                          executor: Executor | None = None) -> list[IPAddress]:
    """The machine's resolver (getaddrinfo) for exactly `host`, addresses deduplicated in the
    order returned; in `executor`'s threads (a gate's own: lookups_in_threads), else the
    loop's default pool.

    A name is looked up absolute (`name.`): written relative, the resolver's search list
    (resolv.conf `search`, LOCALDOMAIN) makes `evil` into `evil.corp.example`, a host no rule
    judged. glibc's hosts file never matches an absolute name, so when that finds nothing the
    name is looked up as written, and the answer kept only if it is for the name itself (its
    canonical name: a hosts-file line's first name, never a search domain's expansion)."""
    loop = asyncio.get_running_loop()

    def getaddrinfo(name: str, flags: int = 0) -> Awaitable[list[tuple[Any, ...]]]:
        return loop.run_in_executor(executor, functools.partial(
            socket.getaddrinfo, name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP,
            flags=flags))

    if ip_literal(host) is not None:
        return _addresses(await getaddrinfo(host))
    try:
        return _addresses(await getaddrinfo(host + "."))
    except socket.gaierror:
        infos = await getaddrinfo(host, socket.AI_CANONNAME)
    canonical = next((info[3] for info in infos if info[3]), "")
    if canonical.lower().rstrip(".") != host:  # the answer's name is not said: no DNS oracle
        raise socket.gaierror(socket.EAI_NONAME, f"no address for {host} itself; the resolver "
                              "answers only through its search list, so write the whole name")
    return _addresses(infos)


def lookups_in_threads(resolver: Resolver | None,
                       limits: GateLimits) -> tuple[Resolver, ThreadPoolExecutor | None]:
    """A gate's resolver: `resolver` as given, or the system's in threads of the gate's own
    (limits.lookups_at_once of them). In the loop's default pool, shared with everything the
    daemon does off the loop (a command's policy check, a run's start, every run's lookups), a
    name whose server never answers held a thread for the resolver's whole timeout (the gate's
    timeout ends the wait, not the thread): a few such names from one run starved them all
    (review s22). A lookup waiting for one of the gate's threads is dropped at that timeout."""
    if resolver is not None:
        return resolver, None
    pool = ThreadPoolExecutor(limits.lookups_at_once, thread_name_prefix="pilothouse-lookup")
    return functools.partial(system_resolver, executor=pool), pool


def _addresses(infos: list[tuple[Any, ...]]) -> list[IPAddress]:
    out: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0])
        if ip not in out:
            out.append(ip)
    return out


async def dial_address(ip: IPAddress, port: int, timeout: float) -> tuple[Any, Any]:
    """Connect to exactly `ip`: the socket is made here and given a numeric address, so no
    second resolution can happen between the check and the dial. Returns the gate's own
    stream (sockio.SockStream) as both reader and writer."""
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    text = ip_text(ip)
    addr: tuple[Any, ...] = (text, port) if ip.version == 4 else (text, port, 0, 0)
    stream = await connect_stream(family, addr, READ_LIMIT, timeout)
    return stream, stream


def dial_failure(exc: OSError) -> str:
    """Why a dial failed, without where: an OSError's text names the address it dialled
    (sockio's "connect to ADDR port N", asyncio's "Connect call failed (ADDR, N)"), and the
    sandbox is not told what a name resolved to (review s22)."""
    if exc.errno:
        return os.strerror(exc.errno)
    return "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__


@functools.lru_cache(maxsize=1024)
def ip_text(ip: IPAddress) -> str:
    """An address's text (hosts.address_text: a mapped IPv4 dotted), remembered: the text of
    an ipaddress object is slow, and the same few addresses are written into every decision,
    dial and close record."""
    return address_text(ip)


# Request targets repeat (an agent calls the same hosts all day) and parsing one is pure, so
# the parsed form of short targets is remembered; a bad target raises and is not remembered.
_REMEMBER_TARGET_CHARS = 300
_connect_target = functools.lru_cache(maxsize=1024)(parse_connect_target)
_absolute_url = functools.lru_cache(maxsize=1024)(parse_absolute_url)


def read_connect(raw: str) -> Target:
    """parse_connect_target, remembered for short targets."""
    return _connect_target(raw) if len(raw) <= _REMEMBER_TARGET_CHARS else \
        parse_connect_target(raw)


def read_absolute(raw: str) -> tuple[Target, str]:
    """parse_absolute_url, remembered for short targets."""
    return _absolute_url(raw) if len(raw) <= _REMEMBER_TARGET_CHARS else parse_absolute_url(raw)


class Refusal(Exception):
    """An answer the gate gives instead of forwarding."""

    def __init__(self, status: int, body: str, decision: str | None = None) -> None:
        super().__init__(body)
        self.status, self.body, self.decision = status, body, decision


@dataclass(eq=False)
class Upstream:
    """One open upstream connection and its byte counters (a tunnel, or a keep-alive HTTP
    connection reused while the client asks for the same target)."""

    target: Target
    address: IPAddress
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    act: Activity = field(default_factory=Activity)
    started: float = field(default_factory=time.monotonic)
    exchanges: int = 0  # HTTP exchanges completed on it
    reusable: bool = False  # the last one completed, and its server keeps the connection open
    keep_s: float | None = None  # how long its server said it keeps it idle (Keep-Alive)


def meter_host(host: str) -> str:
    """A metered endpoint's host as requests name it: an address compressed, a name
    normalised."""
    try:
        return address_text(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return normalise_host(host)


class TurnAway:
    """Answering a connection refused at the limit so that the client reads the answer. Sent
    and closed before the client wrote its request (the gate answers inside the accept), the
    client's write fails (EPIPE) and most clients then drop the 503 they had received; so the
    refusal waits for the request's first bytes, its close, or a second. At most `at_once`
    wait together, each holding its descriptor: past that, the answer goes at once. close()
    (the gate closing) ends every wait now: a refused connection is no connection of the
    gate's, so nothing else would end it, and it would hold its descriptor past the close."""

    __slots__ = ("_tasks", "at_once", "closed", "wait")

    def __init__(self, at_once: int = 16, wait: float = 1.0) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.at_once = at_once
        self.closed = False
        self.wait = wait  # seconds; tests set it long so that "at once" needs no clock

    @property
    def waiting(self) -> int:
        return len(self._tasks)

    async def wait_for_request(self, reader: Any, budget: FdBudget | None = None) -> None:
        """Wait (see the class); the descriptor held meanwhile comes out of the daemon's fd
        `budget`: a connection refused because that budget ran out is answered at once, or
        every run's gate holding sixteen would eat the reserve kept for operator.sock."""
        task = asyncio.current_task()
        if self.closed or task is None or len(self._tasks) >= self.at_once:
            return
        if budget is not None and not budget.take(1):
            return
        self._tasks.add(task)
        try:
            async with asyncio.timeout(self.wait):
                await reader.read(1)
        except (OSError, TimeoutError):  # ConnectionError is an OSError
            pass
        except asyncio.CancelledError:
            if not self.closed:
                raise
            task.uncancel()  # close() ended the wait: the answer goes now
        finally:
            self._tasks.discard(task)
            if budget is not None:
                budget.give(1)

    async def close(self) -> None:
        """End every wait; returns once the connections waiting were answered and closed."""
        self.closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)


# A request target as it goes on a question (the card's "first request") and into a record.
TARGET_SHOWN = 2048


def shown_target(raw: str) -> str:
    """`raw`, or its first TARGET_SHOWN characters and a mark saying how many more went out:
    cut silently, a padded URL had a person read and allow a line whose end (the part that
    carried the data) was never on the card (review s20)."""
    return clipped(raw, TARGET_SHOWN)


def host_header(t: Target) -> str:
    """The Host header for a target: written from the checked target, never copied."""
    return t.host_text if t.port == 80 else t.authority


def request_sent(method: str, raw: str, target: Target) -> str:
    """The request target as the gate sends it (what a person is asked about and a decision
    records): the CONNECT authority, or the URL of the Host header and path it forwards; the
    host normalised (punycode), no userinfo, no fragment. The agent's own spelling named a
    host the gate does not connect to (`http://paypal.example@evil.example/`, a Cyrillic
    letter) next to the punycode destination on the card (review s20)."""
    if method == "CONNECT":
        return target.authority
    return f"http://{host_header(target)}{read_absolute(raw)[1]}"


class Conn:
    """One client connection: its idle clock, its current upstream, why it ended.

    Idleness is judged by one sweeper per gate over everything that moves (request heads,
    bodies, tunnel bytes), not by a timer per read: cheaper, and a silent direction of a busy
    tunnel does not count as idle. `hold` stops the clock while a person is being asked.
    """

    __slots__ = ("task", "writer", "last", "hold", "upstream", "idle", "cut", "how", "allowed_by")

    def __init__(self, task: asyncio.Task[Any] | None, writer: asyncio.StreamWriter) -> None:
        self.task = task
        self.writer = writer
        self.last = time.monotonic()
        self.hold = 0
        self.upstream: Upstream | None = None
        self.idle = False
        self.cut = False  # ended because new rules deny where it goes (Deciding.replace_rules)
        self.how = "closed"
        self.allowed_by: dict[str, Any] | None = None  # the yes its last decision went on

    def ended_how(self) -> str:
        """How the connection ended, for its upstream's `net.closed`."""
        return "idle" if self.idle else "policy" if self.cut else self.how

    def drop(self) -> None:
        """Abort both transports: every read or drain pending in the handler then ends, so it
        unwinds through its own error paths (no cancellation landing in a finally block)."""
        self.writer.transport.abort()
        if self.upstream is not None:
            self.upstream.writer.transport.abort()


def _names_an_address(rule: str | None) -> bool:
    """Whether a rule names an IP address or network ("10.9.8.7", "[fd00::/32]"), read by the
    parser the rules themselves are read with, not a name."""
    try:
        return rule is not None and parse_pattern(rule).network is not None
    except BadPattern:
        return False


def header_spelling(rule: str | None) -> str:
    """A rule as a header may carry it: as written when that is ASCII, else its canonical
    spelling (`пример.invalid` is `xn--e1afmkfd.invalid`). A head is latin-1: the text as
    written made every refusal under such a rule a dropped connection and a traceback in the
    log (review s22)."""
    if rule is not None and rule.isascii():
        return rule
    try:
        return canonical_network_pattern(parse_pattern(rule or ""))
    except BadPattern:
        return (rule or "").encode("ascii", "backslashreplace").decode("ascii")


def denial(run_id: str, profile: str, suggestion: str, method: str, target: Target,
           m: NetMatch, provenance: dict[str, Any] | None) -> Refusal:
    """The 403 for a denied destination: which rule (or why), and the one edit that would
    allow it, so an agent (or the person reading its log) can act without the docs."""
    where = f"[profiles.{profile}.network]"
    if provenance is not None:
        # The daemon's provenance: a person, a grant, or a timeout; tests use "by".
        who = (provenance.get("person") or provenance.get("by") or provenance.get("decider"))
        text = provenance.get("text")
        why = f"asked; denied by {who}" if who else f"asked; denied ({text or 'no answer'})"
        fix = f'add "{suggestion}" to {where} allow, or approve it when asked'
        tag = "deny; rule=asked"
    elif m.basis == "rule" and target.ip is None and _names_an_address(m.rule):
        # A name denied by an address rule: saying which rule would say what the name resolved
        # to (a DNS oracle into the local network, as below); the person's record has it.
        why = f"{target.host} resolves to an address a deny rule or grant covers"
        fix = ("an address deny rule wins over every allow rule; the operator sees which with: "
               "pilothouse history --kind net.decision")
        tag = "deny; rule=address"
    elif m.basis == "rule":
        src = f" ({m.source})" if m.source else ""
        why = m.reason
        fix = (f'the deny rule "{m.rule}"{src} wins over every allow rule; remove or narrow '
               f"it in {where} deny")
        tag = f"deny; rule={header_spelling(m.rule)}"
    elif m.basis == "not-routable" and target.ip is None:
        # A name that resolved into the local network: the sandbox is not told the address
        # (that would make the gate a DNS oracle); the person's record has it.
        why = (f"{target.host} resolves to an address that is not globally routable "
               "(loopback, private, link-local...)")
        fix = (f"only an allow rule in {where} naming that IP (and port) opens it; the operator "
               "sees the address with: pilothouse history --kind net.decision")
        tag = "deny; rule=not-routable"
    elif m.basis == "not-routable":
        why = m.reason
        named = destination(m.address or target.host, target.port)
        fix = (f'add "{named}" to {where} allow (only a rule naming the address opens a '
               "loopback, private or link-local destination)")
        tag = "deny; rule=not-routable"
    else:
        why = m.reason
        fix = (f'add "{suggestion}" to {where} allow, or set default = "ask" there to be '
               "asked")
        tag = "deny; rule=default"
    body = (f"Pilothouse gate: {method} {target.authority} denied for run {run_id}.\n"
            f"Why: {why}.\nTo allow it: {fix}.")
    return Refusal(403, body, tag)
