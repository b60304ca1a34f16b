"""Review s14b: operator.sock's send timeout (console/daemon/server.py `_drain_or_close`).

Each test asserts the SECURE behaviour: it fails while the attack works.
"""

from __future__ import annotations

import asyncio

import pytest

from console.daemon.server import _drain_or_close


class _Transport:
    def __init__(self, buffered: int) -> None:
        self.buffered = buffered
        self.aborted = False

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def abort(self) -> None:
        self.aborted = True


class _TrickleWriter:
    """A client that reads one byte just before each send_timeout ends: its 4 MiB answer stays
    in the daemon's buffer for 4 million timeouts (30 s each by default: 4 years)."""

    def __init__(self, buffered: int) -> None:
        self.transport = _Transport(buffered)

    def get_extra_info(self, name: str) -> None:
        return None

    async def drain(self) -> None:
        await asyncio.Event().wait()  # never drained


def test_a_client_reading_one_byte_per_timeout_does_not_hold_its_answer_for_ever() -> None:
    """`_drain_or_close` goes on while the buffer shrinks at all in a window, so a byte read
    every 29 s (send_timeout 30 s) keeps the connection, its handler and every answer it has
    queued: 16 connections a teammate, 256 requests each, each answer computed in full
    (`history --limit 5000`, an export page) before it waits for the send lock. Here: a
    0.05 s timeout and one byte taken every 0.04 s; the secure behaviour closes it long before
    2 s (a floor on the rate, or a bound on one message's time)."""
    timeout = 0.05

    async def main() -> bool:
        w = _TrickleWriter(4 * 1024 * 1024)

        async def trickle() -> None:
            while w.transport.buffered > 0:
                await asyncio.sleep(timeout * 0.8)
                w.transport.buffered -= 1

        t = asyncio.create_task(trickle())
        try:
            await asyncio.wait_for(_drain_or_close(w, timeout, "teammate"), timeout=2.0)  # type: ignore[arg-type]
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        finally:
            t.cancel()
        return True

    closed = asyncio.run(main())
    assert closed, ("a client taking one byte per send_timeout kept its connection (and the "
                    "4 MiB answer buffered for it) past 40 timeouts")


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
