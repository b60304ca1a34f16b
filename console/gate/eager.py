"""Start a task eagerly: its first step runs at once, in the caller, not a loop turn later.

Why the gate wants it: a proxy's way from accept to answer is mostly one step (the head is
already in the socket, the verdict is remembered, a loopback dial completes inside connect(2)).
Scheduled as an ordinary task, that step waits for the next loop turn, behind everything else
that became ready (the previous tunnel's teardown, other connections); bench/gate.py's CONNECT
setup measured 170 µs that way and 105 µs eagerly, against tinyproxy's 139 (one A/B run;
the figures move with this machine's load, the ratio much less).

Python 3.12 does this itself (`asyncio.Task(..., eager_start=True)`). On 3.11 the first step
is run here with the new task entered as the current task, so asyncio.timeout, current_task
and cancellation behave inside it as in any later step; the task is built around `_Started`,
which hands the task that step's outcome and then the coroutine itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

__all__ = ["start_eagerly"]

T = TypeVar("T")


def start_eagerly(coro: Coroutine[Any, Any, T],
                  loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Task[T]:
    """A task for `coro` whose first step has already run when this returns. Meant for loop
    callbacks (an accept); called inside another task on 3.11, where one task cannot be made
    current inside another, the task starts the ordinary way, a loop turn later."""
    loop = loop or asyncio.get_running_loop()
    if sys.version_info >= (3, 12):
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
    if asyncio.current_task(loop) is not None:
        return loop.create_task(coro)
    started = _Started(coro)
    context = contextvars.copy_context()
    task: asyncio.Task[T] = loop.create_task(started, context=context)  # type: ignore[arg-type]
    # The only way on 3.11 to make a step current for a task that is not running it yet
    # (3.12's eager start swaps the current task itself).
    asyncio.tasks._enter_task(loop, task)  # type: ignore[attr-defined]
    try:
        context.run(started.first_step)
    finally:
        asyncio.tasks._leave_task(loop, task)  # type: ignore[attr-defined]
    return task


_PENDING, _WAITING, _RETURNED, _RAISED, _HANDED_OVER = range(5)


class _Started(Coroutine[Any, Any, Any]):
    """A coroutine whose first step ran before its task took it (see start_eagerly). The
    task's first send gets that step's outcome; every later send, and any throw, goes to the
    coroutine itself, which is suspended where the first step left it."""

    __slots__ = ("_coro", "_state", "_outcome")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro
        self._state = _PENDING
        self._outcome: Any = None

    def first_step(self) -> None:
        try:
            self._outcome = self._coro.send(None)
            self._state = _WAITING
        except StopIteration as stop:
            self._outcome, self._state = stop.value, _RETURNED
        except BaseException as exc:  # noqa: BLE001 - the task raises it, as if it ran the step
            self._outcome, self._state = exc, _RAISED

    def send(self, value: Any) -> Any:
        state, outcome = self._state, self._outcome
        if state == _HANDED_OVER:
            return self._coro.send(value)
        self._state, self._outcome = _HANDED_OVER, None
        if state == _RETURNED:
            raise StopIteration(outcome)
        if state == _RAISED:
            raise outcome
        return outcome  # what the coroutine waits on: the task waits on it now

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        """Into the coroutine where it waits (the task cancelled, or a timeout fired). A step
        that already ended gives the task its result or error as it would have. A cancel that
        comes before the task took the first step's outcome is what a task's cancel() does
        to a task waiting on a future: the future is cancelled and the task wakes up on it, so
        the coroutine sees CancelledError only after the future's own done callbacks ran (a
        sock_recv removes its reader there; unwinding first would close the socket while the
        loop still watches its number, and the next socket to get that number goes deaf)."""
        state, outcome = self._state, self._outcome
        self._state, self._outcome = _HANDED_OVER, None
        if state == _RETURNED:
            raise StopIteration(outcome)
        if state == _RAISED:
            raise outcome
        if state == _WAITING and isinstance(outcome, asyncio.Future) and \
                isinstance(typ, asyncio.CancelledError):
            message = typ.args[0] if typ.args else None
            if outcome.cancel(message):
                return outcome  # the task waits on it; its wake-up throws CancelledError in
            # Already done: its callbacks are queued; a task would wake up behind them and,
            # asked to cancel, throw CancelledError in. A cancelled stand-in queues that.
            stand_in = outcome.get_loop().create_future()
            stand_in.cancel(message)
            stand_in._asyncio_future_blocking = True  # as Future.__await__ yields it
            return stand_in
        return self._coro.throw(typ, val, tb) if val is not None or tb is not None else \
            self._coro.throw(typ)

    def close(self) -> None:
        self._coro.close()

    # What asyncio reads off a task's coroutine to show it (Task repr, get_stack, the
    # "Task was destroyed but it is pending" report): the coroutine's own. (A class cannot
    # make __qualname__ a property; asyncio falls back to __name__, so that names it fully.)
    @property
    def __name__(self) -> str:
        return self._coro.__qualname__

    @property
    def cr_code(self) -> Any:
        return self._coro.cr_code  # type: ignore[attr-defined]

    @property
    def cr_frame(self) -> Any:
        return self._coro.cr_frame  # type: ignore[attr-defined]

    @property
    def cr_running(self) -> bool:
        return self._coro.cr_running  # type: ignore[attr-defined]

    def __await__(self) -> Generator[Any, None, Any]:
        raise TypeError("a _Started coroutine is driven by its task only")
