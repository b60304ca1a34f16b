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

__all__ = ["HelloCheck", "HelloResult", "SniMismatch", "parse_client_hello", "MAX_HELLO_BYTES"]

MAX_HELLO_BYTES = 64 * 1024
_MAX_HELD = MAX_HELLO_BYTES + 16 * 1024  # what a check holds at most before it must decide
# Records one ClientHello may span. TLS lets a handshake message be cut into any number of
# records, but real clients use one (two or three for a very large hello); every parse walks
# them all, so a hello trickled in one-byte records would cost the gate a parse per piece.
MAX_HELLO_RECORDS = 16
# ClientHellos one after another in what a client sends before the server answers: its hello,
# and the one a HelloRetryRequest asks for, sent ahead of it. No client sends a third.
_MAX_HELLOS = 2
# Records of the other types (change_cipher_spec, early data, alerts) walked past around the
# hellos before the server answers, at most: a client sends a change_cipher_spec and a few
# records of early data. Walked without bound, 200 KiB of empty five-byte alerts behind a hello
# cost 36 ms of the loop in one go, and 100 such tunnels held it 0.7 s (review h157).
MAX_OTHER_RECORDS = 64
_HANDSHAKE = 0x16
# The other TLS record types (change_cipher_spec, alert, application_data, heartbeat). A client
# opening with one of these speaks TLS but hides its ClientHello behind it: some servers skip a
# warning alert before the hello, so what follows would reach them unchecked. Refused.
_OTHER_TLS_RECORDS = frozenset((0x14, 0x15, 0x17, 0x18))
_SERVER_HELLO = 0x02
_RETRY_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
_RETRY_AT = 5 + 4 + 2  # record header, handshake header, legacy_version
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
    end: int = 0  # ok: where the hello's last record ends in the buffer


_NEED_MORE = HelloResult("need_more")
_NOT_TLS = HelloResult("not_tls")  # what most plain tunnels' first bytes get: made once
_TOO_MANY_OTHERS = HelloResult("malformed", detail=f"more than {MAX_OTHER_RECORDS} TLS records "
                               "other than handshakes before the server answered")


def _handshake_bytes(buf: bytes) -> tuple[bytes, int, int] | HelloResult:
    """Concatenate handshake record payloads; (data, the buffer length at which the record
    being read is whole, or 0 when the hello's records are; then where they end)."""
    out = bytearray()
    pos = records = 0
    while pos + 5 <= len(buf):
        ctype, major, length = buf[pos], buf[pos + 1], int.from_bytes(buf[pos + 3 : pos + 5])
        if ctype != _HANDSHAKE:
            if pos == 0:
                return _NOT_TLS
            return HelloResult("malformed", detail="non-handshake record inside the ClientHello")
        if major != 3 or length == 0 or length > 16384 + 2048:
            return HelloResult("malformed", detail="bad TLS record header")
        if pos + 5 + length > len(buf):
            out += buf[pos + 5 :]
            return bytes(out), pos + 5 + length, 0
        out += buf[pos + 5 : pos + 5 + length]
        pos += 5 + length
        records += 1
        if records >= MAX_HELLO_RECORDS and (len(out) < 4 or len(out) < 4 + int.from_bytes(
                out[1:4])):
            return HelloResult("malformed", detail=f"ClientHello spread over more than "
                               f"{MAX_HELLO_RECORDS} records")
        if len(out) >= 4 and len(out) >= 4 + int.from_bytes(out[1:4]):
            return bytes(out), 0, pos
    return bytes(out), pos + 5, 0


def parse_client_hello(buf: bytes) -> HelloResult:
    """Parse what the client sent so far. Callers read more while `need_more`."""
    if not buf:
        return _NEED_MORE
    if buf[0] in _OTHER_TLS_RECORDS:
        if len(buf) < 2:
            return HelloResult("need_more", want=2)
        if buf[1] == 3:  # a TLS record header (major version 3), not a plain protocol's byte
            return HelloResult("malformed", detail="a TLS record before the ClientHello")
        return _NOT_TLS
    if buf[0] != _HANDSHAKE:
        return _NOT_TLS
    got = _handshake_bytes(buf)
    if isinstance(got, HelloResult):
        return got
    hs, want, end = got
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
    if len(hs) > 4 + body_len:  # no client puts anything behind its hello in the same record
        return HelloResult("malformed", detail="another handshake message behind the ClientHello")
    try:
        return HelloResult("ok", sni=_server_name(hs[4 : 4 + body_len]), end=end)
    except (IndexError, ValueError) as exc:
        return HelloResult("malformed", detail=str(exc))


def _past_records(buf: bytes | bytearray, types: frozenset[int], pos: int,
                  most: int) -> tuple[int, int, int]:
    """From `pos`, past every whole record of `types`, `most` of them at most: (where the next
    record starts, or len(buf); the buffer length at which a record of `types` still
    incomplete there is whole, else 0; how many were passed)."""
    n, passed = len(buf), 0
    while pos < n and buf[pos] in types and passed < most:
        if pos + 5 > n:
            return pos, pos + 5, passed
        end = pos + 5 + int.from_bytes(buf[pos + 3 : pos + 5])
        if end > n:
            return pos, end, passed
        pos, passed = end, passed + 1
    return pos, 0, passed


def is_retry_request(buf: bytes) -> bool | None:
    """Whether a server's first bytes are a TLS 1.3 HelloRetryRequest (a ServerHello whose
    random is the fixed value of RFC 8446 4.1.3); None while too few have come to say."""
    if buf[:1] not in (b"", bytes([_HANDSHAKE])) or (len(buf) > 5 and buf[5] != _SERVER_HELLO):
        return False
    if len(buf) < _RETRY_AT + len(_RETRY_RANDOM):
        return None
    return buf[_RETRY_AT : _RETRY_AT + len(_RETRY_RANDOM)] == _RETRY_RANDOM


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


class SniMismatch(Exception):
    """A tunnel's ClientHello named another host than the CONNECT target (or was refused)."""


class HelloCheck:
    """A tunnel's first bytes from the client, held until they say whether they may go on.

    A ClientHello must name the CONNECT target, or no name at all; a malformed one is refused;
    anything that is not TLS passes (plain protocols, server-first ones). Another ClientHello
    sent behind the first, in the same bytes or after the server's HelloRetryRequest (which
    `watch_server` sees pass, and which re-arms the check), is checked the same way. Both of
    the gate's pumps feed it (the awaited one for asyncio streams, the loop callbacks of a
    spliced tunnel), so the decision is made here only. A hello is parsed again only once its
    buffer can say more (`want`), and what was read is not read again: neither a hello nor the
    records behind it, trickled a byte or a record at a time, costs a parse per piece (review
    s30: 1,600 tiny hellos in front of one trickled held the daemon's loop 9 ms a byte)."""

    __slots__ = ("buf", "want", "hello", "retrying", "server_decided", "on_server", "_server",
                 "_matches", "_pos", "_passed", "_hellos", "_others")

    def __init__(self, name_matches: Callable[[str], bool]) -> None:
        self.buf = bytearray()
        self.want = 0
        self.hello: HelloResult | None = None  # set once decided
        self.retrying = False  # re-armed by a HelloRetryRequest: the next hello is checked
        self.server_decided = False  # the server's first bytes said whether they are one
        self.on_server: Callable[[], None] | None = None  # called then (the client side resumes)
        self._server = b""  # the server's first bytes, until they say whether they are one
        self._matches = name_matches
        self._restart()

    def _restart(self) -> None:
        """Nothing of the buffer read yet. Then `_pos`: how far it has been read (each byte is
        walked once, whatever the client trickles); `_passed`: the last hello found there, which
        passed; `_hellos`: how many were found; `_others`: the records of other types walked
        past (MAX_OTHER_RECORDS)."""
        self._pos, self._passed, self._hellos, self._others = 0, None, 0, 0

    def _skip_others(self, buf: bytearray) -> int | None:
        """Move `_pos` past the records of other types there: the `want` of one incomplete
        (0: none), or None once more than MAX_OTHER_RECORDS were (the check then refuses)."""
        self._pos, want, passed = _past_records(buf, _OTHER_TLS_RECORDS, self._pos,
                                                MAX_OTHER_RECORDS + 1 - self._others)
        self._others += passed
        return None if self._others > MAX_OTHER_RECORDS else want

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

    @property
    def waiting(self) -> bool:
        """Re-armed and not yet decided: what the client sends now is held and fed here."""
        return self.retrying and self.hello is None

    @property
    def holds_client(self) -> bool:
        """A hello passed and the server has not yet answered: the client's next bytes stay
        unread (in its socket) until it has, since they may be the second hello that a
        retry request asks for, sent ahead of it."""
        return (self.hello is not None and self.hello.status == "ok" and not self.retrying
                and not self.server_decided)

    def feed(self, data: bytes) -> bool:
        """The next bytes from the client (b"" at its EOF); True once decided."""
        self.buf += data
        if data and len(self.buf) < self.want:
            return False
        hello = self._read(self.buf)
        if hello.status == "need_more" and len(self.buf) > _MAX_HELD:
            hello = HelloResult("malformed", detail="more held before a ClientHello than one is")
        elif hello.status == "need_more" and data:
            self.want = hello.want
            return False
        self.hello = hello
        return True

    def _read(self, buf: bytearray) -> HelloResult:
        """The hello in buf (after a HelloRetryRequest: past the records a client may send
        before its second one), then every further hello behind it in the same bytes, read
        on from where the last call stopped (buf only grows until the check decides)."""
        hello = self._passed
        if hello is None:
            if self.retrying:
                want = self._skip_others(buf)
                if want is None:
                    return _TOO_MANY_OTHERS
                if want or self._pos == len(buf):
                    return HelloResult("need_more", want=want or len(buf) + 1)
            hello = self._hello_at(buf)
            if hello.status != "ok":
                if hello.status == "not_tls" and self.retrying:
                    return HelloResult("malformed",
                                       detail="no ClientHello after a HelloRetryRequest")
                return hello
        while not self._names_another(hello) and self._pos < len(buf):
            want = self._skip_others(buf)
            if want is None:
                return _TOO_MANY_OTHERS
            if want:
                return HelloResult("need_more", want=want)  # a record behind it, incomplete
            if self._pos == len(buf) or buf[self._pos] != _HANDSHAKE:
                break  # nothing more, or not TLS: passed as it is
            hello = self._hello_at(buf)
            if hello.status != "ok":
                return hello
        return hello

    def _hello_at(self, buf: bytearray) -> HelloResult:
        """The hello starting at `_pos`; once whole and passed, `_pos` moves past it."""
        start = self._pos
        hello = parse_client_hello(buf[start:])
        if hello.status == "need_more":
            return HelloResult("need_more", want=start + hello.want if hello.want else 0)
        if hello.status != "ok":
            return hello
        self._hellos += 1
        if self._hellos > _MAX_HELLOS:
            return HelloResult("malformed", detail=f"more than {_MAX_HELLOS} ClientHellos in a "
                               "row (a client sends one, and one more after a retry request)")
        self._passed, self._pos = hello, start + hello.end
        return hello

    def _names_another(self, hello: HelloResult) -> bool:
        return hello.sni is not None and not self._matches(hello.sni)

    def watch_server(self, data: bytes) -> bool:
        """The server's first bytes as they pass (b"" at its EOF); True once they said whether
        they are a HelloRetryRequest. One that answers a hello this check passed re-arms it:
        `waiting` is then true until the next hello is decided."""
        self._server += data[: _RETRY_AT + len(_RETRY_RANDOM) - len(self._server)]
        retry = is_retry_request(self._server) if data else False
        if retry is None:
            return False
        self._server, self.server_decided = b"", True
        if retry and self.hello is not None and self.hello.status == "ok":
            self.retrying, self.hello, self.buf, self.want = True, None, bytearray(), 0
            self._restart()
        if self.on_server is not None:
            self.on_server()
        return True

    @property
    def refused(self) -> bool:
        hello = self.hello
        return hello is not None and (hello.status == "malformed" or (
            hello.status == "ok" and self._names_another(hello)))
