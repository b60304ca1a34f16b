"""Waiting on the writer's futures, from a thread or from asyncio, with one error for a stuck
store (the caller refuses the action it was about to take).

A security commit whose waiter gives up is withdrawn (`withdraw=True`): its future is
cancelled, and the writer skips a cancelled item (store/batch.py), so "not recorded" is true.
An item already in the batch being committed cannot be withdrawn; it is no longer behind
anything, so its outcome is waited for, SETTLE_S more at most: the row if it committed, the
batch's error if not, and `StoreUncertain` (still a refusal) only if even that does not come.
Such a record may land later all the same: then a `store.unconfirmed` record follows it, naming
it, so the history never shows it as acted on without saying that the daemon did not wait for
it (an allow it records was refused; `late`, the writer's submit, queues that record).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from store.db import StoreError

T = TypeVar("T")
log = logging.getLogger("pilothouse.store")
SETTLE_S = 10.0  # an item in a batch that is committing: its COMMIT is normally milliseconds
UNCONFIRMED = "store.unconfirmed"
Submit = Callable[..., Any]


class StoreStuck(StoreError):
    """The writer did not answer in time: the store is stuck, not (known to be) out of disk."""


class StoreUncertain(StoreStuck):
    """Timed out in the batch being committed: the record may still land. The caller refuses
    the action, but must not say it was not recorded."""

    uncertain = True  # for callers that test for it without importing this module


def _stuck(timeout: float | None, what: str) -> StoreStuck:
    log.error("store: timed out after %ss %s; withdrawn, not recorded: the writer is stuck",
              timeout, what)
    return StoreStuck(f"timed out after {timeout}s {what}; the store is stuck (withdrawn: "
                      "not recorded)")


def _uncertain(timeout: float | None, what: str) -> StoreUncertain:
    log.error("store: timed out after %ss %s, in a batch that is still committing after "
              "%ss more: it may yet be recorded", timeout, what, SETTLE_S)
    return StoreUncertain(f"timed out after {timeout}s {what}, in a batch still committing "
                          f"{SETTLE_S}s later; the store is stuck and it may yet be recorded")


def _say_when_landed(fut: concurrent.futures.Future[Any], late: Submit | None,
                     timeout: float | None) -> None:
    """An uncertain record that lands after all is followed by a record that names it."""
    if late is None:
        return
    waited = (timeout or 0.0) + SETTLE_S

    def landed(f: concurrent.futures.Future[Any]) -> None:
        if f.cancelled() or f.exception() is not None:
            return  # not recorded: what the caller said of it holds
        row = f.result()
        data = row.get("data") if isinstance(row.get("data"), dict) else {}
        note: dict[str, Any] = {"event_id": row["id"], "event_kind": row["kind"],
                                "waited_s": waited}
        if str(row["kind"]).startswith("approval.") and isinstance(data.get("id"), str):
            note["id"] = data["id"]  # the request's, so `policy why` shows it with the rest
        try:
            late(UNCONFIRMED, run_id=row.get("run_id"), actor="daemon", data=note,
                 text=f"#{row['id']} {row['kind']} was committed after the daemon had stopped "
                      f"waiting for it ({waited:g}s): an allow, start or policy change it "
                      "records was refused; a stop, kill, revoke, cancel or deny took effect")
        except Exception as exc:  # a writer that is closing: the log keeps what happened
            log.error("store: #%s %s landed after its wait ended, and that could not be "
                      "recorded: %s", row["id"], row["kind"], exc)

    fut.add_done_callback(landed)


def wait(fut: concurrent.futures.Future[T], timeout: float | None, what: str,
         withdraw: bool = False, late: Submit | None = None) -> T:
    try:
        return fut.result(timeout)
    except concurrent.futures.TimeoutError:
        pass
    if not withdraw:
        raise StoreStuck(f"timed out after {timeout}s {what}; the store is stuck") from None
    if fut.cancel():
        raise _stuck(timeout, what) from None
    try:  # in the batch being committed (or just done): its outcome, not a guess
        return fut.result(SETTLE_S)
    except concurrent.futures.TimeoutError:
        _say_when_landed(fut, late, timeout)
        raise _uncertain(timeout, what) from None


async def await_(fut: concurrent.futures.Future[T], timeout: float | None, what: str,
                 withdraw: bool = False, late: Submit | None = None) -> T:
    if not withdraw:
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except TimeoutError:
            raise StoreStuck(f"timed out after {timeout}s {what}; the store is stuck") from None
    waiter = asyncio.wrap_future(fut)
    try:
        # shield: wait_for's timeout must not cancel the item on its own (it cannot know
        # whether the batch holds it); withdrawal is decided below
        return await asyncio.wait_for(asyncio.shield(waiter), timeout)
    except TimeoutError:
        pass
    except asyncio.CancelledError:  # the caller is gone: it will not act, so withdraw it
        if not fut.cancel():  # in the batch being committed: it may land, named then
            _say_when_landed(fut, late, timeout)
        raise
    if fut.cancel():
        raise _stuck(timeout, what) from None
    try:
        return await asyncio.wait_for(asyncio.shield(waiter), SETTLE_S)
    except TimeoutError:
        _say_when_landed(fut, late, timeout)
        raise _uncertain(timeout, what) from None
    except asyncio.CancelledError:  # gone while it settles: it may land, named then (h142)
        _say_when_landed(fut, late, timeout)
        raise
