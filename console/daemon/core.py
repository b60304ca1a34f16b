"""The daemon's parts, typed, and the one place that wires them: which part talks to which.

Every operation handler gets the `Core` and takes what it needs from its fields; no part
reaches through another to find a third. `start_core` builds the parts in dependency order,
`stop_core` stops them in reverse (runs first, the store's last flush last).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from console.config.load import Profile
from console.daemon.bus import Bus
from console.daemon.channels import RunChannels
from console.daemon.evaluation import PolicyEvaluator
from console.daemon.gate_wiring import GateWiring
from console.daemon.inbox import Inbox
from console.daemon.live_config import ConfigReloader, LiveConfig
from console.daemon.notify import Notifier
from console.daemon.recording import Recording
from console.daemon.runs import RunManager
from console.daemon.saved_grants import SavedRuleGrants
from console.daemon.storage import Storage
from console.gate.trace import TraceRecorder
from console.gpu import GpuService
from console.paths import Paths
from console.policy import GrantTable
from console.sandbox.base import SandboxBackend
from console.sandbox.choose import choose_backend, get_backend
from console.sandbox.docker_sweep import StartSweep
from console.sandbox.view_leftovers import reconcile_views

log = logging.getLogger("pilothouse.core")
SWEEP_STOP_GRACE_S = 3.0  # a stop waits this long for a container removal under way


@dataclass
class Lifecycle:
    """The daemon process as operations see it."""

    request_stop: Callable[[], None]
    started_at: float = field(default_factory=time.time)
    stopping: bool = False  # set by daemon.stop: new work is refused
    shadowing: set[int] = field(default_factory=set)  # uids with a policy.shadow computing
    checking: set[int] = field(default_factory=set)  # uids with a policy.check computing
    starting: dict[int, int] = field(default_factory=dict)  # uid: its run.starts under way


@dataclass
class Core:
    paths: Paths
    config: LiveConfig
    reloader: ConfigReloader
    bus: Bus
    store: Storage
    grants: GrantTable
    evaluator: PolicyEvaluator
    inbox: Inbox
    channels: RunChannels
    recording: Recording  # floods counted, not written row by row
    runs: RunManager
    gpu: GpuService
    trace: TraceRecorder
    life: Lifecycle
    sweep: StartSweep | None = None  # Docker's orphan sweep, beside the first answers


async def start_core(paths: Paths, config: LiveConfig, bus: Bus,
                     request_stop: Callable[[], None]) -> Core:
    cfg = config.cfg
    store = await Storage.open(paths, cfg)
    # The run manager comes first (GPU attribution and the trace ask it whose a run is); its
    # channels, built last, are hooked in below once they exist.
    runs = RunManager(paths, config.get, store.writer, bus, choose_backend=_backend_for)
    gpu = GpuService(store.writer, bus, config.get, runs)
    await gpu.start()
    # per-request records for `trace export`
    trace = TraceRecorder(store.writer, bus, key=store.key, profile_of=_profile_of(runs))
    grants = GrantTable()
    evaluator = PolicyEvaluator(config, grants)
    recording = Recording(store, bus, config)
    inbox = Inbox(
        record=recording.approval, notify=Notifier(config), timeout_s=cfg.approval_timeout,
        grants=grants, on_change=bus.publish,
        profile_of=lambda name: config.cfg.profile(name),
        policy_now=evaluator.now,
    )
    gates = GateWiring(config, evaluator, inbox, recording, trace)
    channels = RunChannels(paths, config, gates, inbox, evaluator, grants, recording,
                           on_run_end=gpu.finish_run)
    runs.on_prepare, runs.on_end = channels.prepare, channels.teardown
    runs.on_stop = inbox.cancel_run
    reloader = ConfigReloader(config, store, on_change=channels.apply_config)
    reloader.also_on_change(SavedRuleGrants(config, grants, store.record).follow)  # file's truth
    core = Core(paths=paths, config=config, reloader=reloader, bus=bus, store=store,
                grants=grants, evaluator=evaluator, inbox=inbox, channels=channels,
                recording=recording, runs=runs,
                gpu=gpu, trace=trace, life=Lifecycle(request_stop))
    # Leftover views first: a lost run's folder may still hold its staged workspace view (a
    # mount of the person's files) until reconcile_views detaches it.
    await _reconcile_backends(core)
    lost = await runs.reconcile()
    await store.record_security(
        "daemon.started", actor="daemon",
        text=f"daemon started (pid {os.getpid()}); {len(lost)} lost run(s) reconciled",
        data={"lost": lost},
    )
    reloader.start()
    return core


async def stop_core(core: Core) -> None:
    core.reloader.stop()
    sweep, docker = core.sweep, get_backend("docker")
    if sweep is not None and not sweep.done.done():
        # A stop before the sweep ended: it removes nothing more, a removal under way is given
        # a moment, and what it removed is recorded (_docker_swept); the Docker starts waiting
        # for it wait no more. Its thread does not hold the process's exit.
        if sweep.halt():
            await asyncio.wait([sweep.done], timeout=SWEEP_STOP_GRACE_S)
        sweep.done.cancel()
    docker.swept = None
    await core.runs.close(actor="daemon", grace=2.0)
    await core.channels.close()
    await core.gpu.stop()
    core.trace.flush()  # trace rows still waiting for their batch
    await core.store.close()


def _backend_for(requested: str, profile: Profile) -> SandboxBackend:
    return choose_backend(requested, profile.image)


def _profile_of(runs: RunManager) -> Callable[[str], str | None]:
    def profile_of(run_id: str) -> str | None:
        run = runs.runs.get(run_id)
        return run.profile if run is not None else None

    return profile_of


async def _reconcile_backends(core: Core) -> None:
    """Sandboxes of runs this daemon does not know are orphans: removed. Views and bwrap's
    cgroups before the daemon answers; Docker's containers beside its first answers (loading
    the engine's client and asking it took ~0.15 s of every start), every Docker start waiting
    for that sweep (docker.py), so it never removes a run of this daemon's."""
    removed: list[str] = reconcile_views(core.paths.runs_dir)
    try:
        bwrap = get_backend("bwrap")
        if bwrap.usable()[0]:
            removed += await bwrap.reconcile(set())
    except Exception as exc:
        log.warning("could not reconcile sandboxes: %s", exc)
    _note_orphans(core, removed)
    core.sweep = sweep = StartSweep(get_backend("docker"))
    sweep.backend.swept = sweep.done
    sweep.done.add_done_callback(lambda done: _docker_swept(core, sweep, done))


def _docker_swept(core: Core, sweep: StartSweep, done: asyncio.Future[list[str]]) -> None:
    if done.cancelled():  # the daemon stopped first: what the sweep removed until then
        unfinished = {"unfinished": True, **({"removing": sweep.removing} if sweep.removing
                                             else {})}
        _note_orphans(core, list(sweep.removed), unfinished)
    elif (exc := done.exception()) is not None:
        log.warning("could not reconcile Docker sandboxes: %s", exc)
        _note_orphans(core, list(sweep.removed))
    else:
        _note_orphans(core, done.result())


def _note_orphans(core: Core, removed: list[str], more: dict[str, object] | None = None) -> None:
    if removed or more and "removing" in more:
        core.store.record("sandbox.orphans_removed", actor="daemon",
                          text=f"removed {len(removed)} orphan sandbox(es)",
                          data={"removed": removed, **(more or {})})
