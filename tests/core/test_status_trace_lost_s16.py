"""Trace rows the store refuses are counted (console.gate.trace.TraceRecorder.lost, review s16)
and `pilothouse status` says so: a loss only the daemon log held was a loss nobody saw."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from console.cli.daemon import _show_status
from console.daemon.ops.daemon import hello


def _core(lost: int) -> SimpleNamespace:
    return SimpleNamespace(
        config=SimpleNamespace(cfg=SimpleNamespace(files=[], user_file="/x/config.toml")),
        reloader=SimpleNamespace(error=None), life=SimpleNamespace(started_at=0.0),
        paths=SimpleNamespace(runtime_dir=SimpleNamespace(parent="/x")),
        trace=SimpleNamespace(lost=lost))


@pytest.mark.parametrize("lost", [0, 3])
def test_status_says_how_many_metered_requests_were_lost(
        lost: int, capsys: pytest.CaptureFixture[str]) -> None:
    info = asyncio.run(hello(_core(lost), SimpleNamespace(user="alice", role="operator"),  # type: ignore[arg-type]
                             {}, None))  # type: ignore[arg-type]
    assert info["trace_rows_lost"] == lost
    _show_status(info)
    err = capsys.readouterr().err
    assert (f"warning: {lost} request(s)" in err) == bool(lost), err
