"""Real peers for gate tests: an HTTP origin (stdlib http.server, an implementation independent
of the gate's), a TCP echo server, a gate on a real unix socket, and raw clients.

Names in tests resolve (through the gate's resolver hook) to a global address that exists
nowhere, and the gate's dial hook routes whatever address it was asked to dial to a local
server, recording that address. So an "allow" is proven end to end (the bytes reach a real
server) and the address the gate dialled is exactly the one it checked, without opening
loopback in the policy under test.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import shutil
import socket
import ssl
import tempfile
import threading
import weakref
from collections.abc import Callable
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from console.gate import Gate, GateLimits, NetAsk, NetworkRules, Verdict, dial_address
from console.policy.hosts import IPAddress

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "network_cases.toml"
FAKE_GLOBAL = ipaddress.ip_address("93.184.215.14")  # global, never actually dialled
LOCAL = ipaddress.ip_address("127.0.0.1")


# -- origin HTTP server ---------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Origin

    def log_message(self, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        body = self._body()
        seen = {"method": self.command, "path": self.path, "headers": list(self.headers.items()),
                "body": body.decode("latin-1")}
        self.server.requests.append(seen)
        route = self.server.routes.get(self.path.split("?")[0])
        if route is not None:
            ctype, chunks = route
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for c in chunks:
                self.wfile.write(f"{len(c):x}\r\n".encode() + c + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        payload = json.dumps(seen).encode()
        if self.path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(payload), 7):
                piece = payload[i : i + 7]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path.startswith("/eof"):
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
            self.close_connection = True
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Keep-Alive", "timeout=5")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle


class _Origin(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[dict[str, Any]]
    routes: dict[str, tuple[str, list[bytes]]]


class Origin:
    """A real HTTP/1.1 origin on 127.0.0.1; `requests` lists what reached it."""

    def __init__(self) -> None:
        self.server = _Origin(("127.0.0.1", 0), _Handler)
        self.server.requests = []
        self.server.routes = {}
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                        daemon=True)
        self._thread.start()

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.server.requests

    def route(self, path: str, content_type: str, chunks: list[bytes]) -> None:
        """Serve `chunks` (chunked) at `path`, for inference-shaped responses."""
        self.server.routes[path] = (content_type, chunks)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- echo server ------------------------------------------------------------------------------

class Echo:
    """TCP echo on 127.0.0.1 that keeps what it received."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> Echo:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while data := await reader.read(65536):
                self.received += data
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server:
            self.server.close()


# -- the gate, wired with test hooks --------------------------------------------------------

class Harness:
    """A Gate on a real unix socket with recording hooks."""

    def __init__(self, rules: NetworkRules, *, upstream_port: int,
                 names: dict[str, list[IPAddress]] | None = None,
                 ask: Callable[[NetAsk], Any] | None = None, limits: GateLimits | None = None,
                 system_resolve: bool = False, meter: set[tuple[str, int]] | None = None,
                 record_fails: bool = False, real_dial: bool = False,
                 budget: Any = None, veto: Any = None, stands: Any = None) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.dialled: list[tuple[str, int]] = []
        self.resolved: list[str] = []
        self.upstream_port = upstream_port
        self.names = names or {}
        self.record_fails = record_fails
        self.dir = tempfile.mkdtemp(prefix="ph-gate-", dir="/tmp")
        # Removed by close(); tests that close only the gate leave it to this, not to /tmp.
        weakref.finalize(self, shutil.rmtree, self.dir, True)
        self.path = str(Path(self.dir) / "gate.sock")
        kwargs: dict[str, Any] = {}
        if not system_resolve:
            kwargs["resolver"] = self._resolve
        if not real_dial:
            kwargs["dial"] = self._dial
        if stands is not None:
            kwargs["stands"] = stands
        self.gate = Gate("run-1", rules, ask=ask, record=self._record,
                         limits=limits or GateLimits(), meter=meter or set(), profile="demo",
                         budget=budget, veto=veto, **kwargs)

    async def _record(self, kind: str, payload: dict[str, Any]) -> None:
        if self.record_fails and kind == "net.decision":
            raise OSError("disk full")
        self.records.append((kind, payload))

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        self.resolved.append(host)
        return self.names.get(host, [FAKE_GLOBAL])

    async def _dial(self, ip: IPAddress, port: int, timeout: float) -> tuple[Any, Any]:
        # The gate's own dialler (its streams, so tunnels take the spliced path), pointed at
        # the local server instead of the checked address.
        self.dialled.append((str(ip), port))
        return await dial_address(LOCAL, self.upstream_port, timeout)

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [p for k, p in self.records if k == kind]

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_unix_connection(self.path)

    async def close(self) -> None:
        await self.gate.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@asynccontextmanager
async def running(h: Harness):  # type: ignore[no-untyped-def]
    await h.gate.serve_unix(h.path)
    try:
        yield h
    finally:
        await h.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and a Content-Length or until-EOF body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    if status == 200 and "content-length" not in headers and "transfer-encoding" not in headers:
        return status, headers, b""  # a tunnel: the body is the tunnel
    n = int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(n), 5)
    return status, headers, body


async def connect(h: Harness, target: str | bytes, extra: bytes = b""
                  ) -> tuple[int, dict[str, str], bytes, asyncio.StreamReader,
                             asyncio.StreamWriter]:
    reader, writer = await h.open()
    t = target if isinstance(target, bytes) else target.encode()
    writer.write(b"CONNECT " + t + b" HTTP/1.1\r\nHost: " + t + b"\r\n" + extra + b"\r\n")
    await writer.drain()
    status, headers, body = await read_response(reader)
    return status, headers, body, reader, writer


async def echo_tunnels(h: Harness, n: int = 3) -> None:
    """n tunnels to example.com:443 through the gate (allowed), each one echo of five bytes,
    each client closed and gone before the next."""
    for _ in range(n):
        status, _, _, reader, writer = await connect(h, "example.com:443")
        assert status == 200
        writer.write(b"hello")
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"hello"
        writer.close()
        await writer.wait_closed()


async def through(h: Harness, shape: str, authority: str) -> tuple[int, dict[str, str], bytes]:
    """One request through the gate, its answer: `CONNECT authority` (shape "connect") or a
    proxied `GET http://authority/` (any other shape); the connection is closed after."""
    if shape == "connect":
        status, headers, body, _, writer = await connect(h, authority)
    else:
        reader, writer = await h.open()
        writer.write(f"GET http://{authority}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        status, headers, body = await read_response(reader)
    writer.close()
    return status, headers, body


def client_hello(server_name: str | None) -> bytes:
    """A real TLS ClientHello from Python's ssl module (never sent to a real server)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = server_name is not None
    if server_name is None:
        ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def allow_all(question: NetAsk) -> Verdict:  # pragma: no cover - helper
    return Verdict(True, {"by": "test"})
