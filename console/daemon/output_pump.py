"""A run's output, read from its sandbox and cut into lines and bounded batches.

A line longer than MAX_LINE_BYTES goes on as the next line (cut where a character starts), so
one line cannot fill memory and no byte of it is lost; a batch (one run.output event
on the bus, and one message to a `logs -f` client) holds at most OUTPUT_EVENT_CHARS characters,
so a flood of long lines never makes a message a client cannot read (wire.OPERATOR_MAX_LINE).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from console.wire import batched

OUTPUT_FLUSH_S = 0.05
MAX_LINE_BYTES = 16 * 1024  # a longer line is stored as several, in order
# Characters of output in one run.output event at most (a flood flushes sooner than
# OUTPUT_FLUSH_S): as JSON, even all escaped (6 bytes a character), an event stays far under
# the 4 MiB a client reads as one message (wire.OPERATOR_MAX_LINE).
OUTPUT_EVENT_CHARS = 256 * 1024


def line_batches(lines: list[str], most: int = OUTPUT_EVENT_CHARS) -> list[list[str]]:
    """`lines` in order, cut into lists of at most `most` characters (at least one line each)."""
    return batched(lines, most, len)


async def pump_output(stream: asyncio.StreamReader, emit: Callable[[list[str]], None]) -> None:
    """A run's output as lines, handed to `emit` in batches: every OUTPUT_FLUSH_S, sooner past
    OUTPUT_EVENT_CHARS, and at the end."""
    pending: list[str] = []
    pending_chars = 0  # about: bytes read, which a line's characters never outnumber
    partial = b""
    loop = asyncio.get_running_loop()
    next_flush = loop.time() + OUTPUT_FLUSH_S
    while True:
        timeout = max(0.0, next_flush - loop.time())
        try:
            chunk = await asyncio.wait_for(stream.read(65536), timeout=timeout)
        except TimeoutError:
            chunk = None
        if chunk:
            parts = (partial + chunk).split(b"\n")
            partial = parts.pop()
            for part in parts:
                pending.extend(_pieces(part))
            done, partial = _full_pieces(partial)  # the rest of a long line waits for more
            pending.extend(done)
            pending_chars += len(chunk)
        if chunk == b"" and partial:
            pending.extend(_pieces(partial))
            partial = b""
        if pending and (chunk is None or chunk == b"" or loop.time() >= next_flush
                        or pending_chars >= OUTPUT_EVENT_CHARS):
            pending_chars = 0
            emit(pending)
            pending = []
        if chunk is None or loop.time() >= next_flush:
            next_flush = loop.time() + OUTPUT_FLUSH_S
        if chunk == b"":
            return


def _pieces(line: bytes) -> list[str]:
    """One line read whole (its newline gone; a CR before it too), as lines of at most
    MAX_LINE_BYTES bytes each: every byte kept, in order."""
    pieces, rest = _full_pieces(line[:-1] if line.endswith(b"\r") else line)
    return [*pieces, rest.decode("utf-8", "replace")]


def _full_pieces(line: bytes) -> tuple[list[str], bytes]:
    """Pieces of at most MAX_LINE_BYTES off the front of a line while it is longer, and what
    is left of it (at most MAX_LINE_BYTES)."""
    pieces = []
    while len(line) > MAX_LINE_BYTES:
        cut = _cut_at(line)
        pieces.append(line[:cut].decode("utf-8", "replace"))
        line = line[cut:]
    return pieces, line


def _cut_at(raw: bytes) -> int:
    """Where to cut a line longer than MAX_LINE_BYTES: at most that many bytes, before a UTF-8
    character's continuation bytes rather than inside it (bytes that are not UTF-8: at the
    bound)."""
    cut = MAX_LINE_BYTES
    while cut > MAX_LINE_BYTES - 3 and raw[cut] & 0xC0 == 0x80:
        cut -= 1
    return cut if raw[cut] & 0xC0 != 0x80 else MAX_LINE_BYTES

