"""The workload benchmark screen at 80x24 (issue 15 point 4): stored replay sweeps, written to
replay.db by the same function `pilothouse replay` uses, read off the rendered screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from console.paths import resolve
from console.tui.app import PilothouseApp
from console.tui.screens.bench import BenchScreen
from store.replay_results import store_agents, store_step
from tests.tui.fixed import NOW, FixedSource
from tests.tui.screen import attached, palette_ready, screen_text, shows, until

pytestmark = pytest.mark.usefixtures("utc")

NO_ENERGY = "no GPU energy readings (NVML not available)"


def step(conc: int, per_gpu: float, per_user: float, ttft: tuple[float, float, float],
         j: float | None, usd: float | None) -> dict[str, Any]:
    """A step as step_figures (console/replay/figures.py) returns it."""
    missing = {} if j is not None else {"j_per_output_token": NO_ENERGY, "usd_per_mtok": NO_ENERGY}
    return {"concurrency": conc, "requests": 12 * conc, "errors": 0, "seconds": 30.0, "gpus": 1,
            "tok_s_out_per_gpu": per_gpu, "tok_s_out": per_gpu, "tok_s_per_user": per_user,
            "ttft_p50_ms": ttft[0], "ttft_p90_ms": ttft[1], "ttft_p99_ms": ttft[2],
            "j_per_output_token": j, "usd_per_mtok": usd, "missing": missing}


NEWER = [step(1, 62.0, 61.5, (120, 180, 240), 1.92, 0.534), step(2, 118.0, 58.0, (130, 200, 260), 1.04, 0.289),
         step(4, 221.0, 54.2, (160, 260, 390), 0.61, 0.169), step(8, 388.0, 47.9, (240, 420, 777), 0.37, 0.103)]
OLDER = [step(1, 40.0, 40.0, (300, 350, 400), None, None), step(16, 300.0, 19.0, (900, 1500, 2100), None, None)]


def agent(lane: str, reqs: int, tin: int, cached: int, tout: int, think: float | None,
          ttft: float, reuse: float) -> dict[str, Any]:
    """A lane as summarise_trace (console/replay/summary.py) returns it."""
    return {"lane": lane, "run_id": lane.split("/")[0], "profile": "claude", "requests": reqs,
            "errors": 0, "tokens_in": tin, "tokens_cached": cached, "tokens_out": tout,
            "ttft_p50_ms": ttft, "ttft_p90_ms": ttft * 2, "duration_p50_ms": 900.0,
            "duration_p90_ms": 1800.0, "think_p50_s": think, "tok_s_out_answering": 40.0,
            "prefix_reuse": reuse}


AGENTS = [agent("01JD8ZQ5K3R7W2M4XN6Y/0", 41, 612345, 480000, 9876, 4.2, 310, 0.78),
          agent("01JD8ZQ5K3R7W2M4XN6Y/1", 7, 52000, 31000, 1404, None, 280, 0.6)]


def bench_app(tmp_path: Path) -> PilothouseApp:
    paths = resolve(tmp_path / "home")
    db = paths.data_dir / "replay.db"
    for sweep_id, steps in (("20260101-000000-aaaaaa", OLDER), ("20260101-000100-bbbbbb", NEWER)):
        for s in steps:
            store_step(db, sweep_id, s, trace="/home/dev/traces/claude.jsonl",
                       url="http://127.0.0.1:8000/v1", model="qwen-7b", ts=NOW)
    store_agents(db, "20260101-000100-bbbbbb", AGENTS)
    return PilothouseApp(paths, source=FixedSource(), clock=lambda: NOW,  # type: ignore[arg-type]
                         desktop_notify=False)


def plot_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if "│" in line and "╭" not in line]


async def test_the_curve_and_each_steps_figures_at_80x24(tmp_path: Path) -> None:
    app = bench_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("b")
        screen = await until(pilot, lambda: isinstance(app.screen, BenchScreen) and app.screen.loaded
                             and app.screen, "the benchmark screen")
        text = await shows(pilot, "1 of 2")
        assert "sweep 20260101-000100-bbbbbb" in text and "1 of 2" in text, text
        assert "qwen-7b at http://127.0.0.1:8000/v1" in text, text
        rows = plot_rows(text)

        def where(label: str) -> tuple[int, int]:
            for i, line in enumerate(rows):
                body = line.split("│")[2] if line.count("│") > 2 else line.split("│")[-1]
                col = f" {body} ".find(f" {label} ")
                if col >= 0:
                    return i, col
            raise AssertionError(f"point {label} not on the plot:\n{text}")

        # throughput per GPU grows with concurrency while each user gets fewer tokens/s
        top8, left8 = where("8")
        top1, left1 = where("1")
        assert top8 < top1 and left8 < left1, text
        assert "tok/s per user" in text and "output tok/s per GPU" in text
        await pilot.press("end")
        text = await shows(pilot, "01JD8ZQ5K3R…XN6Y/1")  # the last row: scrolled to the end
        assert "TTFT p50" in text and "$/Mtok" in text, text
        row8 = next(line for line in text.splitlines() if "388.0" in line)
        for figure in ("47.9", "240", "420", "777", "0.370", "0.103"):
            assert figure in row8, row8
        # Per agent, as recorded: requests, tokens, think time, TTFT and prefix reuse.
        lane0 = next(line for line in text.splitlines() if "01JD8ZQ5K3R…XN6Y/0" in line)
        for figure in (" 41 ", "612,345", "480,000", "9,876", "4.2", "310", "78%"):
            assert figure in lane0, lane0
        lane1 = next(line for line in text.splitlines() if "01JD8ZQ5K3R…XN6Y/1" in line)
        assert " 7 " in lane1 and "52,000" in lane1 and "n/a" in lane1 and "60%" in lane1, lane1
        assert "Per agent (lane)" in text and max(len(line) for line in text.splitlines()) <= 80
        await pilot.press("left_square_bracket", "home")
        text = await shows(pilot, "2 of 2")
        assert "sweep 20260101-000000-aaaaaa" in text and "2 of 2" in text, text
        await pilot.press("end")
        text = await shows(pilot, "No per-agent figures for this sweep")
        assert "j_per_output_token: n/a (no GPU energy readings" in text, text
        assert "No per-agent figures for this sweep" in text, text
        assert screen.index == 1


async def test_reachable_from_the_palette_and_listed_in_help(tmp_path: Path) -> None:
    app = bench_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("question_mark")
        await shows(pilot, "Keys: ")  # the help's title: the help is drawn
        assert "Workload benchmark" in screen_text(app) or "Workload benchmark" in str(
            app.screen.query_one("#dialog-body").render()), screen_text(app)
        await pilot.press("escape")
        await pilot.press("colon", *"Workload benchmark")
        await palette_ready(pilot, "Workload benchmark")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, BenchScreen), "the screen from the palette")


async def test_no_results_says_how_to_get_some(tmp_path: Path) -> None:
    app = PilothouseApp(resolve(tmp_path / "empty"), source=FixedSource(), clock=lambda: NOW,  # type: ignore[arg-type]
                        desktop_notify=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, BenchScreen) and app.screen.loaded, "the screen")
        text = await shows(pilot, "No replay results yet")
        assert "No replay results yet" in text and "pilothouse replay TRACE" in text, text


def test_snapshot_at_80x24_scrolled_to_the_agents(snap_compare, tmp_path: Path) -> None:
    async def open_bench(pilot: Pilot[None]) -> None:
        await attached(pilot)
        await pilot.press("b")
        await until(pilot, lambda: isinstance(pilot.app.screen, BenchScreen)
                    and pilot.app.screen.loaded, "the benchmark screen")
        await pilot.press("end")
        await pilot.pause(0.2)

    assert snap_compare(bench_app(tmp_path), terminal_size=(80, 24), run_before=open_bench)
