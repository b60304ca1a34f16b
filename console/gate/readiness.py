"""The gate's own epoll for its tunnels' sockets, watched by the event loop as one descriptor.

Why: a spliced tunnel (splice.py) starts and stops watching its two sockets several times in
its life, and asyncio's add_reader/remove_reader cost about twenty Python calls each (handle,
selector key, transport check) where epoll_ctl is one system call. With the tunnels' sockets in
an epoll of the gate's own, watching is one C call, and one loop wake-up serves every tunnel
that became ready at once (bench/gate.py: CPU per tunnel and tunnels/s).

Level-triggered, as the loop's own selector: what a callback leaves unread is reported again
on the next turn. Callbacks run on the loop's thread, from one loop callback; one that raises
is reported through the loop's exception handler, as asyncio reports a failed callback, and
the others still run.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Callable

__all__ = ["Readiness"]

_READABLE = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP
_WRITABLE = select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP
_BATCH = 256  # events taken per wake-up; the loop comes back for the rest


class Readiness:
    """Readers and writers of non-blocking descriptors, as the loop's add_reader/add_writer
    (one callback per descriptor and direction; adding again replaces it). A descriptor must
    be removed before it is closed: epoll forgets a closed one, these tables do not."""

    __slots__ = ("loop", "_epoll", "_readers", "_writers")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._epoll = select.epoll()
        self._readers: dict[int, Callable[[], object]] = {}
        self._writers: dict[int, Callable[[], object]] = {}
        self.loop.add_reader(self._epoll.fileno(), self._dispatch)

    def add_reader(self, fd: int, callback: Callable[[], object]) -> None:
        self._watch(fd, callback, self._readers, self._writers)

    def add_writer(self, fd: int, callback: Callable[[], object]) -> None:
        self._watch(fd, callback, self._writers, self._readers)

    def remove_reader(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None:
            self._update(fd)

    def remove_writer(self, fd: int) -> None:
        if self._writers.pop(fd, None) is not None:
            self._update(fd)

    def _watch(self, fd: int, callback: Callable[[], object],
               table: dict[int, Callable[[], object]],
               other: dict[int, Callable[[], object]]) -> None:
        known = fd in table or fd in other
        table[fd] = callback
        try:
            if known:
                self._update(fd)
            else:
                self._epoll.register(fd, self._mask(fd))
        except OSError:
            del table[fd]
            raise

    def _mask(self, fd: int) -> int:
        return (select.EPOLLIN if fd in self._readers else 0) | \
            (select.EPOLLOUT if fd in self._writers else 0)

    def _update(self, fd: int) -> None:
        mask = self._mask(fd)
        if mask:
            self._epoll.modify(fd, mask)
        else:
            try:
                self._epoll.unregister(fd)
            except (FileNotFoundError, ValueError):  # closed already: epoll forgot it
                pass

    def _dispatch(self) -> None:
        readers, writers = self._readers, self._writers
        # A callback may remove others (a tunnel ending stops both of its directions), so
        # each is looked up when its turn comes; a descriptor number reused meanwhile gets
        # at worst a wake-up with nothing to do, which every callback here tolerates.
        for fd, events in self._epoll.poll(0, _BATCH):
            if events & _READABLE:
                self._run(readers.get(fd))
            if events & _WRITABLE:
                self._run(writers.get(fd))

    def _run(self, callback: Callable[[], object] | None) -> None:
        if callback is None:
            return
        try:
            callback()
        except Exception as exc:  # one broken tunnel must not stall the others
            self.loop.call_exception_handler({
                "message": "gate: exception in a tunnel's readiness callback",
                "exception": exc})

    def close(self) -> None:
        """Stop watching (what is still registered is forgotten) and free the epoll."""
        if self._epoll.closed:
            return
        self.loop.remove_reader(self._epoll.fileno())
        self._epoll.close()
        self._readers.clear()
        self._writers.clear()

    def watching(self) -> int:
        """How many descriptors are watched (tests: a tunnel leaves none behind)."""
        return len(self._readers.keys() | self._writers.keys())
