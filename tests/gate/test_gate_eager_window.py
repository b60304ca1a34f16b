"""The window of an eager start (console.gate.eager on 3.11): between start_eagerly returning
and the task's first scheduled step, the task must behave as a task that waits where its first
step left it. Each test acts inside that window: in the same loop callback that started the
task, or in one queued right behind its step."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest

from console.gate.eager import start_eagerly


def in_one_callback(act: Callable[[], Any]) -> asyncio.Future[Any]:
    """Run `act` as a plain loop callback (where the gate's accept runs); its value."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()
    loop.call_soon(lambda: done.set_result(act()))
    return done


async def test_a_cancel_in_the_window_lets_the_awaited_futures_callbacks_run_first() -> None:
    """A task cancelled while it waits on loop.sock_recv removes its reader (the future's
    done callback) before the coroutine unwinds and closes the socket. The eager task did it
    the other way round: the socket closed first, its number went to the next connection (in
    the gate: the next accept, whose first step registers its reader inline), and the stale
    registration left that connection's reader dead; it never heard a byte."""
    loop = asyncio.get_running_loop()
    first_end, first_peer = socket.socketpair()
    first_end.setblocking(False)
    got: asyncio.Future[bytes] = loop.create_future()
    kept: list[object] = []

    async def waits_then_closes() -> None:
        try:
            await loop.sock_recv(first_end, 10)
        finally:
            first_end.close()

    async def reads(sock: socket.socket) -> None:
        got.set_result(await loop.sock_recv(sock, 10))

    def next_connection() -> None:  # queued behind the cancelled task's first step
        mine, peer = socket.socketpair()
        mine.setblocking(False)
        kept.extend([mine, peer, start_eagerly(reads(mine), loop)])
        peer.send(b"hello")

    def start_and_cancel() -> asyncio.Task[None]:
        task = start_eagerly(waits_then_closes(), loop)
        task.cancel()
        loop.call_soon(next_connection)
        return task

    task = await in_one_callback(start_and_cancel)
    try:
        assert await asyncio.wait_for(got, 2) == b"hello"
        assert task.cancelled()
    finally:
        first_peer.close()
        for thing in kept:
            if isinstance(thing, socket.socket):
                thing.close()


async def test_a_cancel_in_the_window_runs_the_coroutines_finally_and_cancels_the_task() -> None:
    loop = asyncio.get_running_loop()
    waited_on: asyncio.Future[None] = loop.create_future()
    cleaned: list[str] = []

    async def work() -> None:
        try:
            await waited_on
        finally:
            cleaned.append("finally")

    def start_and_cancel() -> asyncio.Task[None]:
        task = start_eagerly(work(), loop)
        assert task.cancel("closing")
        return task

    task = await in_one_callback(start_and_cancel)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled() and cleaned == ["finally"] and waited_on.cancelled()


async def test_a_cancel_in_the_window_after_the_awaited_future_finished_still_cancels() -> None:
    """As a task does: the future's result is not delivered once cancel() was called."""
    loop = asyncio.get_running_loop()
    waited_on: asyncio.Future[str] = loop.create_future()
    seen: list[object] = []

    async def work() -> None:
        try:
            seen.append(await waited_on)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    def start_finish_cancel() -> asyncio.Task[None]:
        task = start_eagerly(work(), loop)
        waited_on.set_result("result")
        task.cancel()
        return task

    task = await in_one_callback(start_finish_cancel)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]


async def test_a_cancel_in_the_window_after_a_bare_yield_reaches_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    seen: list[str] = []

    async def work() -> None:
        try:
            await asyncio.sleep(0)
            seen.append("went on")
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    def start_and_cancel() -> asyncio.Task[None]:
        task = start_eagerly(work(), loop)
        task.cancel()
        return task

    task = await in_one_callback(start_and_cancel)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]


async def test_a_coroutine_that_swallows_the_cancel_goes_on_in_its_task() -> None:
    loop = asyncio.get_running_loop()
    waited_on: asyncio.Future[None] = loop.create_future()

    async def work() -> str:
        try:
            await waited_on
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
        await asyncio.sleep(0.01)
        return "went on"

    def start_and_cancel() -> asyncio.Task[str]:
        task = start_eagerly(work(), loop)
        task.cancel()
        return task

    task = await in_one_callback(start_and_cancel)
    assert await task == "went on"


async def test_the_first_step_sees_its_task_and_the_callback_sees_none_after() -> None:
    loop = asyncio.get_running_loop()
    seen: dict[str, object] = {}

    async def work() -> None:
        seen["inside"] = asyncio.current_task()
        await asyncio.sleep(0)
        seen["later"] = asyncio.current_task()

    def start() -> asyncio.Task[None]:
        task = start_eagerly(work(), loop)
        seen["after"] = asyncio.current_task()
        return task

    task = await in_one_callback(start)
    await task
    assert seen["inside"] is task and seen["later"] is task and seen["after"] is None


def test_a_keyboard_interrupt_in_the_first_step_stops_the_loop() -> None:
    """KeyboardInterrupt and SystemExit are not kept in a task: they end run_forever."""
    loop = asyncio.new_event_loop()

    async def work() -> None:
        raise KeyboardInterrupt

    started: list[asyncio.Task[None]] = []
    try:
        loop.call_soon(lambda: started.append(start_eagerly(work(), loop)))
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(asyncio.sleep(1))
        assert isinstance(started[0].exception(), KeyboardInterrupt)
    finally:
        loop.close()


async def test_a_waiting_task_names_its_coroutine_and_shows_its_stack() -> None:
    """What asyncio prints about a task ("Task was destroyed but it is pending", a stuck
    connection's get_stack/print_stack) names the coroutine, not the wrapper."""
    loop = asyncio.get_running_loop()
    waited_on: asyncio.Future[None] = loop.create_future()

    async def a_connection() -> None:
        await waited_on

    task = await in_one_callback(lambda: start_eagerly(a_connection(), loop))
    try:
        assert "a_connection" in repr(task)
        frames = task.get_stack()
        assert frames and frames[0].f_code.co_name == "a_connection"
    finally:
        waited_on.set_result(None)
        await task


async def test_a_timeout_already_due_in_the_first_step_fires_after_the_task_took_over() -> None:
    """The task's first scheduled step is queued before anything its first step schedules,
    and timers run after queued callbacks: no timeout can land inside the window."""
    loop = asyncio.get_running_loop()
    waited_on: asyncio.Future[None] = loop.create_future()

    async def work() -> str:
        try:
            async with asyncio.timeout(0):
                await waited_on
        except TimeoutError:
            return "timed out"
        return "not timed out"

    task = await in_one_callback(lambda: start_eagerly(work(), loop))
    assert await task == "timed out"
    assert waited_on.cancelled() and task.cancelling() == 0


async def test_a_cancel_in_the_window_after_the_awaited_future_failed_takes_its_error() -> None:
    """A task's wake-up takes the future's error (so asyncio does not report it as never
    retrieved when the future goes), then, asked to cancel, throws CancelledError in."""
    loop = asyncio.get_running_loop()
    waited_on: asyncio.Future[None] = loop.create_future()

    async def work() -> None:
        await waited_on

    def start_fail_cancel() -> asyncio.Task[None]:
        task = start_eagerly(work(), loop)
        waited_on.set_exception(ValueError("the peer went away"))
        task.cancel()
        return task

    task = await in_one_callback(start_fail_cancel)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert waited_on._log_traceback is False  # what Future.__del__ reads before it complains
