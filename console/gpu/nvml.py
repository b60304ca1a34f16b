"""The GPU sampler: a thread that reads NVML (module `pynvml`, distribution nvidia-ml-py) at a
fixed rate and hands each tick, all GPUs at once, to a callback.

Nothing NVML says can crash it. Each field read is its own try: an error makes that one field
"not available" with the error's name as the reason (NotSupported, NoPermission, GpuIsLost,
Unknown, ...). A field that is NotSupported stays so until restart and is not asked again (the
answer cannot change and asking costs a driver call per tick). A GPU that reports GpuIsLost is
marked lost, its other fields are skipped, and it is retried every LOST_RETRY_S; the others keep
being sampled. No library, no driver or no devices: one status line ("no NVIDIA GPU: ...") and
the thread idles, retrying NVML every IDLE_RETRY_S in case a driver is loaded later.

The pynvml module is a constructor argument so tests and the benchmark can pass a scripted fake
with the real module's shapes and exception classes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

log = logging.getLogger("pilothouse.gpu")

MIN_HZ, MAX_HZ, DEFAULT_HZ = 0.2, 10.0, 1.0
IDLE_RETRY_S = 60.0  # how often an idle sampler tries NVML again
LOST_RETRY_S = 30.0  # how often a lost GPU is looked for again
LIMIT_REFRESH_S = 10.0  # the enforced power limit rarely changes: read it this often

PidToRun = Callable[[int], str | None]

# The per-tick fields: name -> how to read it. Each is one NVML call, read in its own try.
_SIMPLE_FIELDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("power_mw", "nvmlDeviceGetPowerUsage", ()),
    ("energy_mj", "nvmlDeviceGetTotalEnergyConsumption", ()),
    ("temp_c", "nvmlDeviceGetTemperature", ("NVML_TEMPERATURE_GPU",)),
    ("sm_clock_mhz", "nvmlDeviceGetClockInfo", ("NVML_CLOCK_SM",)),
    ("mem_clock_mhz", "nvmlDeviceGetClockInfo", ("NVML_CLOCK_MEM",)),
)
_CONST_DEFAULTS = {"NVML_TEMPERATURE_GPU": 0, "NVML_CLOCK_SM": 1, "NVML_CLOCK_MEM": 2}
FIELDS = ("power_mw", "energy_mj", "util_gpu", "util_mem", "mem_used", "mem_total", "temp_c",
          "sm_clock_mhz", "mem_clock_mhz", "power_limit_mw")


@dataclass
class ProcSample:
    pid: int
    used_bytes: int | None  # None: NVML cannot say (MIG instances, WDDM)
    run_id: str | None
    kind: str = "compute"  # "compute", "graphics" or "compute+graphics"


@dataclass
class GpuSample:
    """One GPU at one tick. A field is None exactly when `missing` says why."""

    index: int
    name: str | None = None
    uuid: str | None = None
    power_mw: int | None = None
    energy_mj: int | None = None  # NVML's running counter since the driver loaded
    util_gpu: int | None = None
    util_mem: int | None = None
    mem_used: int | None = None
    mem_total: int | None = None
    temp_c: int | None = None
    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None
    power_limit_mw: int | None = None
    procs: list[ProcSample] = field(default_factory=list)
    procs_missing: str | None = None  # why the process list (or its memory) is not available
    missing: dict[str, str] = field(default_factory=dict)
    lost: bool = False
    # True on a GPU's first sample and the first after it was lost: the energy counter cannot be
    # compared with the previous reading (the GPU may have been reset).
    fresh: bool = False

    def run_memory(self) -> dict[str, int]:
        """GPU memory per run on this GPU (only processes whose memory NVML reports)."""
        out: dict[str, int] = {}
        for p in self.procs:
            if p.run_id is not None and p.used_bytes is not None:
                out[p.run_id] = out.get(p.run_id, 0) + p.used_bytes
        return out


@dataclass
class Tick:
    ts: float  # wall clock, comparable with token events' ts
    gpus: list[GpuSample]
    status: str
    available: bool


def reason(exc: BaseException) -> str:
    """A short, stable name for an NVML error: NotSupported, NoPermission, GpuIsLost, ..."""
    name = type(exc).__name__
    if name.startswith("NVMLError_"):
        return name.removeprefix("NVMLError_")
    if name == "NVMLLibraryMismatchError":
        return "FunctionNotFound (driver older than nvidia-ml-py)"
    if name == "NVMLError":
        return f"NVMLError {getattr(exc, 'value', '?')}"
    return f"{name}: {exc}"[:120]


def _status_for_init_error(exc: BaseException) -> str:
    why = reason(exc)
    text = {
        "LibraryNotFound": "the NVIDIA driver's NVML library (libnvidia-ml.so.1) was not found; "
                           "install the NVIDIA driver to meter GPUs",
        "DriverNotLoaded": "the NVIDIA kernel driver is not loaded (is nvidia.ko loaded? try "
                           "nvidia-smi)",
        "NoPermission": "no permission to use NVML (check /dev/nvidia* permissions)",
        "LibRmVersionMismatch": "the NVML library and the kernel driver versions differ; reboot "
                                "or reload the driver",
    }.get(why, f"NVML could not start ({why})")
    return f"no NVIDIA GPU: {text}"


class _Gpu:
    """What the sampler remembers about one device between ticks."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.handle: Any = None
        self.name: str | None = None
        self.uuid: str | None = None
        self.lost_reason: str | None = None
        self.lost_at = 0.0
        self.fresh = True
        self.unsupported: dict[str, str] = {}  # field -> reason, never asked again
        self.power_limit: int | None = None
        self.power_limit_missing: str | None = None
        self.limit_read_at = -1e18
        self.memory_v1 = False  # the driver has no nvmlDeviceGetMemoryInfo_v2
        self.procs_v2: set[str] = set()  # process-list functions the driver has only as _v2


class NvmlSampler:
    """Samples every GPU at `hz` in a daemon thread; `on_tick(Tick)` runs in that thread."""

    def __init__(self, hz: float = DEFAULT_HZ, *, nvml: ModuleType | Any | None = None,
                 pid_to_run: PidToRun | None = None, on_tick: Callable[[Tick], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.hz = hz
        self._nvml = nvml
        self.pid_to_run = pid_to_run or (lambda pid: None)
        self.on_tick = on_tick
        self._clock = clock
        self._gpus: list[_Gpu] = []
        self._inited = False
        self._init_tried_at: float | None = None
        self.status = "GPU sampler not started"
        self._base_status = ""
        self.available = False
        self.driver: str | None = None
        self.latest: Tick | None = None
        self.ticks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- rate ------------------------------------------------------------------------------------

    @property
    def hz(self) -> float:
        return self._hz

    @hz.setter
    def hz(self, value: float) -> None:
        # Clamped rather than refused: config validation already reports bad values to a person.
        self._hz = min(MAX_HZ, max(MIN_HZ, float(value)))

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> NvmlSampler:
        if self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gpu-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._inited:
            try:
                self._nvml.nvmlShutdown()  # type: ignore[union-attr]
            except Exception:  # shutting down: nothing useful to do with an error
                pass
            self._inited = False

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                tick = self.sample_once()
            except Exception:  # a bug here must not kill metering for the daemon's lifetime
                log.exception("GPU sampler tick failed")
                tick = None
            if tick is not None and self.on_tick is not None:
                try:
                    self.on_tick(tick)
                except Exception:
                    log.exception("GPU tick consumer failed")
            period = 1.0 / self._hz if self.available else min(IDLE_RETRY_S, 5.0)
            next_at += period
            now = time.monotonic()
            if next_at < now:  # fell behind (suspend, a slow driver): skip, do not burst
                next_at = now + period
            self._stop.wait(next_at - now)

    # --- NVML ------------------------------------------------------------------------------------

    def _ensure_init(self, now: float) -> bool:
        if self._inited:
            return True
        if self._init_tried_at is not None and now - self._init_tried_at < IDLE_RETRY_S:
            return False
        self._init_tried_at = now
        if self._nvml is None:
            try:
                import pynvml
            except ImportError:
                self.status = ("no NVIDIA GPU: the nvidia-ml-py package is not installed "
                               "(pip install nvidia-ml-py)")
                return False
            self._nvml = pynvml
        nvml = self._nvml
        try:
            nvml.nvmlInit()
        except Exception as exc:
            self.status = _status_for_init_error(exc)
            return False
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except Exception as exc:
            self.status = f"no NVIDIA GPU: NVML could not count devices ({reason(exc)})"
            self._shutdown_quietly()
            return False
        if count <= 0:
            self.status = "no NVIDIA GPU: the driver is loaded but reports no devices"
            self._shutdown_quietly()
            return False
        try:
            self.driver = str(nvml.nvmlSystemGetDriverVersion())
        except Exception:
            self.driver = None
        self._gpus = [_Gpu(i) for i in range(count)]
        for gpu in self._gpus:
            self._open(gpu, now)
        self._inited = True
        self.available = True
        self._base_status = (f"{count} NVIDIA GPU{'s' if count != 1 else ''}"
                             + (f", driver {self.driver}" if self.driver else ""))
        self.status = self._base_status
        return True

    def _shutdown_quietly(self) -> None:
        try:
            self._nvml.nvmlShutdown()  # type: ignore[union-attr]
        except Exception:
            pass

    def _open(self, gpu: _Gpu, now: float) -> None:
        """Get (again) a device's handle and identity; a failure marks it lost."""
        nvml = self._nvml
        try:
            if gpu.uuid and hasattr(nvml, "nvmlDeviceGetHandleByUUID"):
                # After a reset indexes can move; the UUID names the same board.
                gpu.handle = nvml.nvmlDeviceGetHandleByUUID(gpu.uuid)
            else:
                gpu.handle = nvml.nvmlDeviceGetHandleByIndex(gpu.index)
        except Exception as exc:
            gpu.lost_reason, gpu.lost_at, gpu.handle = reason(exc), now, None
            return
        for attr, fn in (("name", "nvmlDeviceGetName"), ("uuid", "nvmlDeviceGetUUID")):
            if getattr(gpu, attr) is None:
                try:
                    value = getattr(nvml, fn)(gpu.handle)
                    setattr(gpu, attr, value.decode() if isinstance(value, bytes) else str(value))
                except Exception:
                    pass
        gpu.lost_reason = None
        gpu.fresh = True

    def sample_once(self, now: float | None = None) -> Tick | None:
        """One tick, synchronously (the thread's body; tests and the benchmark call it too).
        None while no GPU is available."""
        now = self._clock() if now is None else now
        if not self._ensure_init(now):
            self.available = False
            return None
        gpus = [self._sample_gpu(g, now) for g in self._gpus]
        lost = sum(1 for s in gpus if s.lost)
        self.status = self._base_status + (f", {lost} lost" if lost else "")
        tick = Tick(now, gpus, self.status, True)
        self.latest = tick
        self.ticks += 1
        return tick

    def _sample_gpu(self, gpu: _Gpu, now: float) -> GpuSample:
        if gpu.lost_reason is not None and now - gpu.lost_at >= LOST_RETRY_S:
            self._open(gpu, now)
        sample = GpuSample(gpu.index, gpu.name, gpu.uuid)
        if gpu.lost_reason is not None:
            return self._lost(sample, gpu.lost_reason)
        nvml, h = self._nvml, gpu.handle
        sample.fresh, gpu.fresh = gpu.fresh, False
        try:
            for name, fn, consts in _SIMPLE_FIELDS:
                args = [getattr(nvml, c, _CONST_DEFAULTS[c]) for c in consts]
                value = self._read(gpu, sample, (name,), lambda fn=fn, args=args:
                                   getattr(nvml, fn)(h, *args))
                if value is not None:
                    setattr(sample, name, int(value))
            util = self._read(gpu, sample, ("util_gpu", "util_mem"),
                              lambda: nvml.nvmlDeviceGetUtilizationRates(h))
            if util is not None:
                sample.util_gpu, sample.util_mem = int(util.gpu), int(util.memory)
            mem = self._read(gpu, sample, ("mem_used", "mem_total"), lambda: self._memory(gpu))
            if mem is not None:
                sample.mem_used, sample.mem_total = int(mem.used), int(mem.total)
            self._power_limit(gpu, sample, now)
            self._processes(gpu, sample)
        except _GpuLost as lost:
            gpu.lost_reason, gpu.lost_at = lost.why, now
            return self._lost(GpuSample(gpu.index, gpu.name, gpu.uuid), lost.why)
        return sample

    def _lost(self, sample: GpuSample, why: str) -> GpuSample:
        sample.lost = True
        sample.missing = {f: why for f in FIELDS}
        sample.procs_missing = why
        return sample

    def _read(self, gpu: _Gpu, sample: GpuSample, names: tuple[str, ...],
              call: Callable[[], Any]) -> Any:
        known = gpu.unsupported.get(names[0])
        if known is not None:
            for n in names:
                sample.missing[n] = known
            return None
        try:
            return call()
        except Exception as exc:
            why = reason(exc)
            if why in ("GpuIsLost", "GpuNotFound", "ResetRequired"):
                raise _GpuLost(why) from None
            if why == "NotSupported" or why.startswith("FunctionNotFound"):
                for n in names:
                    gpu.unsupported[n] = why
            for n in names:
                sample.missing[n] = why
            return None

    def _power_limit(self, gpu: _Gpu, sample: GpuSample, now: float) -> None:
        if now - gpu.limit_read_at >= LIMIT_REFRESH_S or gpu.limit_read_at > now:
            gpu.limit_read_at = now
            probe = GpuSample(gpu.index)
            value = self._read(gpu, probe, ("power_limit_mw",),
                               lambda: self._nvml.nvmlDeviceGetEnforcedPowerLimit(gpu.handle))
            gpu.power_limit = int(value) if value is not None else None
            gpu.power_limit_missing = probe.missing.get("power_limit_mw")
        sample.power_limit_mw = gpu.power_limit
        if gpu.power_limit_missing:
            sample.missing["power_limit_mw"] = gpu.power_limit_missing

    def _memory(self, gpu: _Gpu) -> Any:
        """Memory as nvidia-smi counts it: the v2 struct leaves out what the driver reserves
        (v1 counts it as used). A driver without v2 gets v1, and is not asked for v2 again."""
        nvml = self._nvml
        version = getattr(nvml, "nvmlMemory_v2", None)
        if not gpu.memory_v1 and version is not None:
            try:
                return nvml.nvmlDeviceGetMemoryInfo(gpu.handle, version=version)
            except Exception as exc:
                if not _missing_version(exc):
                    raise
                gpu.memory_v1 = True
        return nvml.nvmlDeviceGetMemoryInfo(gpu.handle)

    def _process_list(self, gpu: _Gpu, fn: str) -> Any:
        """pynvml's unversioned process lists call the `_v3` symbol only; an older driver has
        `_v2` alone (same struct for what we read), so fall back once and remember."""
        nvml = self._nvml
        if fn not in gpu.procs_v2:
            try:
                return getattr(nvml, fn)(gpu.handle)
            except Exception as exc:
                if not _missing_version(exc) or not hasattr(nvml, fn + "_v2"):
                    raise
                gpu.procs_v2.add(fn)
        return getattr(nvml, fn + "_v2")(gpu.handle)

    def _processes(self, gpu: _Gpu, sample: GpuSample) -> None:
        """Compute and graphics processes, merged by pid, mapped to runs."""
        by_pid: dict[int, ProcSample] = {}
        errors: list[str] = []
        for kind, fn in (("compute", "nvmlDeviceGetComputeRunningProcesses"),
                         ("graphics", "nvmlDeviceGetGraphicsRunningProcesses")):
            probe = GpuSample(gpu.index)
            procs = self._read(gpu, probe, (f"procs_{kind}",),
                               lambda fn=fn: self._process_list(gpu, fn))
            if procs is None:
                errors.append(f"{kind}: {probe.missing.get(f'procs_{kind}')}")
                continue
            for p in procs:
                pid = int(p.pid)
                used = getattr(p, "usedGpuMemory", None)
                used = int(used) if isinstance(used, int) else None
                have = by_pid.get(pid)
                if have is None:
                    by_pid[pid] = ProcSample(pid, used, self._map(pid), kind)
                else:
                    # The same process with both kinds of context: NVML reports its whole
                    # footprint in each list, so take the larger, not the sum.
                    have.kind = "compute+graphics"
                    if used is not None:
                        have.used_bytes = max(have.used_bytes or 0, used)
        sample.procs = sorted(by_pid.values(), key=lambda p: p.pid)
        if len(errors) == 2:
            sample.procs_missing = "; ".join(errors)
        elif sample.procs and all(p.used_bytes is None for p in sample.procs):
            sample.procs_missing = "per-process memory not reported (MIG or WDDM)"

    def _map(self, pid: int) -> str | None:
        try:
            return self.pid_to_run(pid)
        except Exception:  # a process that vanished between NVML and psutil
            return None


def _missing_version(exc: BaseException) -> bool:
    """The driver lacks a versioned symbol (older than the nvidia-ml-py wrappers), or refuses
    the struct version asked for."""
    why = reason(exc)
    return why.startswith("FunctionNotFound") or why == "ArgumentVersionMismatch"


class _GpuLost(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why
