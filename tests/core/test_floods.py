"""The flood control (console/daemon/floods.py): a repeat is only ever counted against a row
that was written, so an allow whose record failed is never let through as a "repeat"."""

from __future__ import annotations

from typing import Any

from console.daemon.floods import FloodControl


def _floods() -> tuple[FloodControl, list[tuple[str, str | None, str, dict[str, Any]]], list[float]]:
    emitted: list[tuple[str, str | None, str, dict[str, Any]]] = []
    now = [100.0]
    floods = FloodControl(lambda *row: emitted.append(row), lambda: 1000, clock=lambda: now[0])
    return floods, emitted, now


def test_an_event_whose_row_was_not_written_is_not_a_repeat() -> None:
    floods, emitted, _ = _floods()
    key = ("r1", "policy.decision", "exec: echo ok", "allow")
    assert floods.admit(*key)  # first: written now
    # Its commit failed (the caller refused the action and did not call recorded()):
    assert floods.admit(*key), "a retry was counted as a repeat of a row that is not there"
    floods.recorded(*key)  # this one was written
    assert not floods.admit(*key, {"n": 3})  # now a repeat, counted
    assert not floods.admit(*key, {"n": 4})
    floods.flush()
    (summary,) = emitted
    assert summary[0] == "policy.decision" and summary[3]["count"] == 2
    assert summary[3]["aggregated"] is True and summary[3]["n"] == 4


def test_a_new_window_writes_the_first_row_again() -> None:
    floods, emitted, now = _floods()
    key = ("r1", "net.decision", "127.0.0.1:80", "deny")
    assert floods.admit(*key)
    floods.recorded(*key)
    assert not floods.admit(*key)
    now[0] += 1.5
    assert floods.admit(*key)  # the window closed: its summary went, the next second starts anew
    assert [e[3]["count"] for e in emitted] == [1]


def test_long_request_lines_alike_in_their_first_characters_stay_apart() -> None:
    """Review s30 (helper 104): repeats were told apart by their first 300 characters, so
    `/<320 p>?token=SECRET` folded into `/<320 p>?q=1` and was in no row."""
    from console.daemon.floods import Fold

    emitted: list[tuple[str, str | None, str, dict[str, Any]]] = []
    floods = FloodControl(lambda *row: emitted.append(row), lambda: 1000, clock=lambda: 100.0,
                          folds={"net.decision": Fold(listed=("method", "target"))})
    key = ("r1", "net.decision", "127.0.0.5:80", "allow")
    assert floods.admit(*key, {"method": "GET", "target": "/" + "p" * 320 + "?q=1"})
    floods.recorded(*key)
    for tail in ("?token=SECRET-7f3a", "?q=2"):
        assert not floods.admit(*key, {"method": "GET", "target": "/" + "p" * 320 + tail})
    floods.flush()
    (summary,) = emitted
    shown = [d["target"] for d in summary[3]["distinct"]]
    assert len(shown) == 2 and all("more characters, sha256" in t for t in shown), shown
