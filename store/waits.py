"""Waiting on the writer's futures, from a thread or from asyncio, with one error for a stuck
store (the caller refuses the action it was about to take)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import TypeVar

from store.db import StoreError

T = TypeVar("T")


def wait(fut: concurrent.futures.Future[T], timeout: float | None, what: str) -> T:
    try:
        return fut.result(timeout)
    except concurrent.futures.TimeoutError:
        raise StoreError(f"timed out after {timeout}s {what}; the store is stuck") from None


async def await_(fut: concurrent.futures.Future[T], timeout: float | None, what: str) -> T:
    try:
        return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
    except TimeoutError:
        raise StoreError(f"timed out after {timeout}s {what}; the store is stuck") from None
