"""Just enough TLS to read the server name a client asks for in its ClientHello.

A CONNECT tunnel is decided on its authority (`allowed.com:443`); a client that then says
`SNI: denied.com` inside it is trying to reach another virtual host on a shared front end
(domain fronting, or a CDN address allowed by IP). The gate reads the ClientHello before it
forwards it and closes the tunnel when the names differ. Nothing is decrypted; a ClientHello is
plaintext. Encrypted ClientHello hides the inner name and is out of reach here by design.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from console.policy.hosts import BadTarget, normalise_host

__all__ = ["HelloCheck", "HelloResult", "parse_client_hello", "MAX_HELLO_BYTES"]

MAX_HELLO_BYTES = 64 * 1024
# Records one ClientHello may span. TLS lets a handshake message be cut into any number of
# records, but real clients use one (two or three for a very large hello); every parse walks
# them all, so a hello trickled in one-byte records would cost the gate a parse per piece.
MAX_HELLO_RECORDS = 16
_HANDSHAKE = 0x16
# The other TLS record types (change_cipher_spec, alert, application_data, heartbeat). A client
# opening with one of these speaks TLS but hides its ClientHello behind it: some servers skip a
# warning alert before the hello, so what follows would reach them unchecked. Refused.
_OTHER_TLS_RECORDS = frozenset((0x14, 0x15, 0x17, 0x18))
_CLIENT_HELLO = 0x01
_EXT_SERVER_NAME = 0x0000


@dataclass(frozen=True, slots=True)
class HelloResult:
    """`status`: need_more | not_tls | malformed | ok. With ok, `sni` is the host name the
    client sent (None when it sent none)."""

    status: str
    sni: str | None = None
    detail: str = ""
    want: int = 0  # need_more: the buffer length at which parsing again can say more


_NEED_MORE = HelloResult("need_more")


def _handshake_bytes(buf: bytes) -> tuple[bytes, int] | HelloResult:
    """Concatenate handshake record payloads; (data, the buffer length at which the record
    being read is whole, or 0 when the hello's records are)."""
    out = bytearray()
    pos = records = 0
    while pos + 5 <= len(buf):
        ctype, major, length = buf[pos], buf[pos + 1], int.from_bytes(buf[pos + 3 : pos + 5])
        if ctype != _HANDSHAKE:
            if pos == 0:
                return HelloResult("not_tls")
            return HelloResult("malformed", detail="non-handshake record inside the ClientHello")
        if major != 3 or length == 0 or length > 16384 + 2048:
            return HelloResult("malformed", detail="bad TLS record header")
        if pos + 5 + length > len(buf):
            out += buf[pos + 5 :]
            return bytes(out), pos + 5 + length
        out += buf[pos + 5 : pos + 5 + length]
        pos += 5 + length
        records += 1
        if records >= MAX_HELLO_RECORDS and (len(out) < 4 or len(out) < 4 + int.from_bytes(
                out[1:4])):
            return HelloResult("malformed", detail=f"ClientHello spread over more than "
                               f"{MAX_HELLO_RECORDS} records")
        if len(out) >= 4 and len(out) >= 4 + int.from_bytes(out[1:4]):
            return bytes(out), 0
    return bytes(out), pos + 5


def parse_client_hello(buf: bytes) -> HelloResult:
    """Parse what the client sent so far. Callers read more while `need_more`."""
    if not buf:
        return _NEED_MORE
    if buf[0] in _OTHER_TLS_RECORDS:
        if len(buf) < 2:
            return HelloResult("need_more", want=2)
        if buf[1] == 3:  # a TLS record header (major version 3), not a plain protocol's byte
            return HelloResult("malformed", detail="a TLS record before the ClientHello")
        return HelloResult("not_tls")
    if buf[0] != _HANDSHAKE:
        return HelloResult("not_tls")
    got = _handshake_bytes(buf)
    if isinstance(got, HelloResult):
        return got
    hs, want = got
    if len(hs) < 4:
        return HelloResult("need_more", want=want) if len(buf) < MAX_HELLO_BYTES \
            else HelloResult("malformed")
    if hs[0] != _CLIENT_HELLO:
        return HelloResult("malformed", detail="first handshake message is not a ClientHello")
    body_len = int.from_bytes(hs[1:4])
    if body_len > MAX_HELLO_BYTES:
        return HelloResult("malformed", detail="ClientHello too large")
    if len(hs) < 4 + body_len:
        return HelloResult("need_more", want=want) if len(buf) < MAX_HELLO_BYTES + 1024 \
            else HelloResult("malformed")
    try:
        return HelloResult("ok", sni=_server_name(hs[4 : 4 + body_len]))
    except (IndexError, ValueError) as exc:
        return HelloResult("malformed", detail=str(exc))


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated ClientHello")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def num(self, n: int) -> int:
        return int.from_bytes(self.take(n))

    def vec(self, n: int) -> bytes:
        return self.take(self.num(n))


def _server_name(body: bytes) -> str | None:
    c = _Cursor(body)
    c.take(2 + 32)  # legacy_version, random
    c.vec(1)  # session id
    c.vec(2)  # cipher suites
    c.vec(1)  # compression methods
    if c.pos == len(body):
        return None  # no extensions at all
    ext = _Cursor(c.vec(2))
    names: list[str] = []
    while ext.pos < len(ext.data):
        etype, data = ext.num(2), ext.vec(2)
        if etype != _EXT_SERVER_NAME:
            continue
        if names:
            raise ValueError("two server_name extensions")
        lst = _Cursor(_Cursor(data).vec(2))
        while lst.pos < len(lst.data):
            kind, name = lst.num(1), lst.vec(2)
            if kind == 0:
                names.append(name.decode("ascii"))  # UnicodeError is a ValueError
    if len(names) > 1:
        raise ValueError("more than one host_name in server_name")
    return names[0] if names else None


class HelloCheck:
    """A tunnel's first bytes from the client, held until they say whether they may go on.

    A ClientHello must name the CONNECT target, or no name at all; a malformed one is refused;
    anything that is not TLS passes (plain protocols, server-first ones). Both of the gate's
    pumps feed it (the awaited one for asyncio streams, the loop callbacks of a spliced
    tunnel), so the decision is made here only. A hello is parsed again only once its buffer
    can say more (`want`): one trickled a byte at a time is not parsed per byte."""

    __slots__ = ("buf", "want", "hello", "_matches")

    def __init__(self, name_matches: Callable[[str], bool]) -> None:
        self.buf = bytearray()
        self.want = 0
        self.hello: HelloResult | None = None  # set once decided
        self._matches = name_matches

    @classmethod
    def naming(cls, host: str) -> HelloCheck:
        """The check of a tunnel to `host` (a CONNECT target's normalised host): the SNI must
        name the same host once normalised as a target is."""
        def matches(sni: str) -> bool:
            try:
                return normalise_host(sni) == host
            except BadTarget:
                return False
        return cls(matches)

    def feed(self, data: bytes) -> bool:
        """The next bytes from the client (b"" at its EOF); True once decided."""
        self.buf += data
        if data and len(self.buf) < self.want:
            return False
        hello = parse_client_hello(self.buf)
        if hello.status == "need_more" and data:
            self.want = hello.want
            return False
        self.hello = hello
        return True

    @property
    def refused(self) -> bool:
        hello = self.hello
        return hello is not None and (hello.status == "malformed" or (
            hello.status == "ok" and hello.sni is not None and not self._matches(hello.sni)))
