"""The bridge: the sandbox's only network way out, put there by the daemon.

`open_bridge_listener(netns_pid)` returns a socket listening on 127.0.0.1:3128 inside the
sandbox's network namespace (made by the nsenter_listen helper, so nothing in the image is
needed); `serve_bridge(sock, handler)` accepts on it in the daemon's own loop. The handler is
the gate's connection handler, or `forward_to_unix(run_dir / "gate.sock")` to relay bytes to the
run's gate socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .base import BRIDGE_PORT, SandboxError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
HELPER = Path(__file__).with_name("nsenter_listen.py")
HELPER_TIMEOUT = 10.0


def _listen_in_thread(netns_pid: int, port: int) -> socket.socket:
    """Root in the initial user namespace may enter any network namespace, and a network
    namespace belongs to a thread, not the process: a throwaway thread enters the sandbox's,
    binds, and ends. No helper process to start (that costs tens of ms per run)."""
    from console.sandbox import nsenter_listen

    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["sock"] = nsenter_listen.listen_in(netns_pid, port, join_user=False)
        except OSError as exc:
            result["error"] = exc

    # A new thread each time (never a pool's): it ends inside the sandbox's namespace.
    t = threading.Thread(target=work, name="pilothouse-bridge-setns", daemon=True)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    sock: socket.socket = result["sock"]
    sock.setblocking(False)
    return sock


async def open_bridge_listener(netns_pid: int, port: int = BRIDGE_PORT) -> socket.socket:
    """A listening TCP socket on 127.0.0.1:port in the network namespace of netns_pid."""
    await loopback_ready(netns_pid)
    if os.geteuid() == 0:
        try:
            return _listen_in_thread(netns_pid, port)
        except OSError:
            pass  # not root over that namespace: the helper process joins its user namespace
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", str(HELPER), str(netns_pid), str(port),
            str(theirs.fileno()),
            pass_fds=(theirs.fileno(),),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        theirs.close()
        try:
            msg, fds, _flags, _addr = await asyncio.wait_for(
                asyncio.to_thread(socket.recv_fds, ours, 1024, 1), HELPER_TIMEOUT
            )
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise SandboxError("the bridge helper did not answer", "pilothouse doctor") from None
        _, err = await proc.communicate()
    finally:
        theirs.close()
        ours.close()
    if msg == b"ok" and fds:
        sock = socket.socket(fileno=fds[0])
        sock.setblocking(False)
        return sock
    for fd in fds:
        os.close(fd)
    why = (msg or err or b"no answer").decode(errors="replace").strip()
    raise SandboxError(
        f"cannot put the network bridge into the sandbox (pid {netns_pid}): {why}",
        "the daemon needs to be root, or own the sandbox's user namespace (bwrap), or reach a "
        "rootless Docker; `pilothouse doctor` checks this",
    )


async def loopback_ready(pid: int, timeout: float = 2.0) -> None:
    """Wait until the sandbox's loopback is set up in its network namespace.

    bwrap reports the child's pid before the child configures `lo` (address, then up), and
    blocks on --block-fd only after. The bridge brings `lo` up too; doing so while bwrap's own
    netlink requests are in flight made bwrap fail now and then ("loopback: Failed
    RTM_NEWADDR"). The local route for 127.0.0.1 exists once both steps are done."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    path = f"/proc/{pid}/net/fib_trie"
    while loop.time() < deadline:
        try:
            with open(path) as fh:
                if "127.0.0.1" in fh.read():
                    return
        except OSError:
            return  # gone, or not ours to read: the bridge copes on its own
        await asyncio.sleep(0.001)


async def serve_bridge(sock: socket.socket, handler: Handler) -> asyncio.Server:
    """Accept bridge connections in this loop; each goes to handler(reader, writer)."""
    return await asyncio.start_server(handler, sock=sock)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


def forward_to_unix(path: Path) -> Handler:
    """A handler relaying each bridge connection, byte for byte, to a unix socket (gate.sock)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_unix_connection(str(path))
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))
        finally:
            for w in (up_w, writer):
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()

    return handle
