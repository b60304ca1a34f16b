"""A connection's first step runs inside the accept (console.gate.eager): the task it makes
must behave like any task, in its first step and after, whatever happens in between."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import socket
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from console.gate.eager import start_eagerly
from console.gate.sockio import Listener, SockStream

T = TypeVar("T")

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


async def eagerly(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """start_eagerly as the gate calls it: from a loop callback, outside any task."""
    loop = asyncio.get_running_loop()
    started: asyncio.Future[asyncio.Task[T]] = loop.create_future()
    loop.call_soon(lambda: started.set_result(start_eagerly(coro, loop)))
    return await started


async def test_the_first_step_runs_before_start_eagerly_returns() -> None:
    seen: list[str] = []

    async def work() -> str:
        seen.append("first step")
        await asyncio.sleep(0)
        seen.append("second step")
        return "done"

    loop = asyncio.get_running_loop()
    started: asyncio.Future[tuple[asyncio.Task[str], list[str]]] = loop.create_future()
    loop.call_soon(lambda: started.set_result((start_eagerly(work(), loop), list(seen))))
    task, when_it_returned = await started
    assert when_it_returned == ["first step"]
    assert await task == "done"
    assert seen == ["first step", "second step"]


async def test_the_first_step_sees_its_own_task_and_a_timeout_works_in_it() -> None:
    got: dict[str, object] = {}

    async def work() -> None:
        got["current"] = asyncio.current_task()
        async with asyncio.timeout(0.05):
            await asyncio.sleep(10)

    task = await eagerly(work())
    assert got["current"] is task
    assert asyncio.current_task() is not task  # the caller's own task is current again
    with pytest.raises(TimeoutError):
        await task


async def test_results_and_errors_of_a_first_step_that_ends_reach_the_task() -> None:
    async def returns() -> int:
        return 7

    async def fails() -> None:
        raise ValueError("in the first step")

    assert await (await eagerly(returns())) == 7
    with pytest.raises(ValueError, match="in the first step"):
        await (await eagerly(fails()))


async def test_context_changes_stay_in_the_task() -> None:
    async def work() -> str:
        VAR.set("inside")
        await asyncio.sleep(0)
        return VAR.get()

    task = await eagerly(work())
    assert VAR.get() == "unset"
    assert await task == "inside"


async def test_the_listener_serves_a_connection_inside_the_accept(tmp_path) -> None:
    """The gate's listener answers in the same callback that accepted: no loop turn between
    a CONNECT head already sent and the handler reading it (bench/gate.py: CONNECT setup)."""
    served = asyncio.Event()
    where: dict[str, object] = {}

    async def handler(stream: SockStream, _: SockStream) -> None:
        where["in_accept"] = any(f.function == "_accept" for f in inspect.stack())
        where["task"] = asyncio.current_task()
        stream.close()
        served.set()

    listener = Listener.unix(str(tmp_path / "l.sock"), handler, 1024)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(tmp_path / "l.sock"))
        await asyncio.wait_for(served.wait(), 5)
        assert where["in_accept"] is True
        assert isinstance(where["task"], asyncio.Task)
    finally:
        client.close()
        listener.close()
        await listener.wait_closed()


async def test_inside_a_task_it_starts_the_ordinary_way() -> None:
    """3.11 cannot make one task current inside another: the first step then waits its turn."""
    seen: list[str] = []

    async def work() -> None:
        seen.append("ran")

    task = start_eagerly(work())
    if hasattr(asyncio, "eager_task_factory"):  # 3.12 and later swap the current task
        assert seen == ["ran"]
    else:
        assert seen == []
    await task
    assert seen == ["ran"]
