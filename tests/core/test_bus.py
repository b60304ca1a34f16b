"""The bus: topics, exact kinds, per-run filters, and bounded queues that say what they lost."""

from __future__ import annotations

from console.daemon.bus import Bus


async def test_topics_and_exact_kinds() -> None:
    bus = Bus()
    states = bus.subscribe(["run.state", "approval"])
    everything = bus.subscribe()
    for kind in ("run.output", "run.state", "approval.requested", "net.decision"):
        bus.publish({"kind": kind})
    got = [states.queue.get_nowait()["kind"] for _ in range(states.queue.qsize())]
    assert got == ["run.state", "approval.requested"]
    assert everything.queue.qsize() == 4


async def test_run_filter_keeps_run_less_events() -> None:
    bus = Bus()
    sub = bus.subscribe(run_id="a")
    bus.publish({"kind": "run.output", "run_id": "b"})
    bus.publish({"kind": "run.output", "run_id": "a"})
    bus.publish({"kind": "daemon.started"})
    assert [sub.queue.get_nowait().get("run_id") for _ in range(2)] == ["a", None]


async def test_a_slow_subscriber_loses_the_oldest_and_is_told() -> None:
    bus = Bus()
    sub = bus.subscribe()
    for i in range(10_005):
        bus.publish({"kind": "run.output", "n": i})
    first = await sub.get()
    assert first == {"kind": "bus.dropped", "count": 5}
    assert (await sub.get())["n"] == 5
