"""A scripted stand-in for the `pynvml` module (nvidia-ml-py), for machines without a GPU.

Built from the real module's shapes: its exception classes (NVMLError_NotSupported, ...,
raised exactly as the real wrappers raise them), its constants, and its ctypes structs
(c_nvmlUtilization_t, c_nvmlMemory_t, c_nvmlProcessInfo_v3_t turned into the same friendly
objects the real process calls return, usedGpuMemory None when NVML says "not available").
Only the functions the sampler uses exist; anything else raises AttributeError like a missing
symbol would.

Driver age: `missing` names C symbols the scripted driver lacks (an older driver than the
nvidia-ml-py wrappers expect): calling them raises NVMLError_FunctionNotFound, and the
unversioned process-list wrappers raise NVMLLibraryMismatchError, exactly as pynvml's
`throwOnVersionMismatch` does when `_v3` is absent. Memory: `mem_reserved` is what the driver
keeps back; the v1 struct counts it as used (as nvidia-smi does not), the v2 struct does not.

Scripting: each FakeGpu holds its readings as plain attributes a test changes between ticks;
`errors[function_name]` makes that function raise (a class, an instance, or a list consumed one
per call, None in the list meaning "answer normally"); `lost = True` makes every call on it
raise NVMLError_GpuIsLost. Energy advances with `advance(seconds)` at the current power, or by
itself from a clock when the FakeNvml is given one (for threaded tests and the benchmark).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pynvml as real

GiB = 1 << 30


class FakeGpu:
    def __init__(self, index: int, *, name: str = "NVIDIA H100 80GB HBM3",
                 uuid: str | None = None, power_w: float = 120.0, energy_j: float = 5_000.0,
                 util: tuple[int, int] = (40, 15), mem_used: int = 10 * GiB,
                 mem_total: int = 80 * GiB, mem_reserved: int = 0, temp_c: int = 45, sm_mhz: int = 1980,
                 mem_mhz: int = 2619, limit_w: float = 700.0,
                 procs: list[tuple[int, int | None]] | None = None,
                 graphics: list[tuple[int, int | None]] | None = None) -> None:
        self.index = index
        self.name = name
        self.uuid = uuid or f"GPU-{index:08x}-fake-4000-8000-{index:012x}"
        self.power_mw = int(power_w * 1000)
        self.energy_mj = int(energy_j * 1000)
        self.util = util
        self.mem_used, self.mem_total = mem_used, mem_total
        self.mem_reserved = mem_reserved
        self.temp_c, self.sm_mhz, self.mem_mhz = temp_c, sm_mhz, mem_mhz
        self.limit_mw = int(limit_w * 1000)
        self.procs = list(procs or [])
        self.graphics = list(graphics or [])
        self.errors: dict[str, Any] = {}
        self.lost = False
        self._carry = 0.0

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass at the current power (mW x s = mJ)."""
        exact = self.power_mw * seconds + self._carry
        self.energy_mj += int(exact)
        self._carry = exact - int(exact)


def _raise(error: Any) -> None:
    if isinstance(error, type):
        raise error()
    raise error


def _proc(pid: int, used: int | None) -> Any:
    # Exactly what nvmlDeviceGetComputeRunningProcesses_v3 builds from the C struct.
    na = real.NVML_VALUE_NOT_AVAILABLE_ulonglong.value
    struct = real.c_nvmlProcessInfo_v3_t(pid=pid, usedGpuMemory=na if used is None else used,
                                         gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF)
    obj = real.nvmlStructToFriendlyObject(struct)
    if obj.usedGpuMemory == na:
        obj.usedGpuMemory = None
    return obj


class FakeNvml:
    """Module-like object with pynvml's names. `calls` counts every function call by name."""

    def __init__(self, gpus: list[FakeGpu], *, init_error: Any = None,
                 driver: str = "550.54.15", clock: Callable[[], float] | None = None,
                 missing: set[str] | frozenset[str] = frozenset()) -> None:
        for name in dir(real):
            if name.startswith(("NVML_", "NVMLError")) or name in ("NVMLLibraryMismatchError",
                                                                     "nvmlMemory_v2"):
                setattr(self, name, getattr(real, name))
        self.missing = set(missing)
        self.gpus = gpus
        self.init_error = init_error
        self.driver = driver
        self.calls: Counter[str] = Counter()
        self.initialised = False
        self._clock = clock
        self._last_clock = clock() if clock else None

    # --- library ------------------------------------------------------------------------------

    def _tick_clock(self) -> None:
        if self._clock is not None:
            now = self._clock()
            last = now if self._last_clock is None else self._last_clock
            for g in self.gpus:
                g.advance(now - last)
            self._last_clock = now

    def _call(self, fn: str, gpu: FakeGpu | None = None) -> None:
        self.calls[fn] += 1
        if fn in self.missing:  # what _nvmlGetFunctionPointer raises for an absent symbol
            raise real.NVMLError(real.NVML_ERROR_FUNCTION_NOT_FOUND)
        if gpu is None:
            return
        if gpu.lost:
            raise real.NVMLError(real.NVML_ERROR_GPU_IS_LOST)
        error = gpu.errors.get(fn)
        if isinstance(error, list):
            error = error.pop(0) if error else None
        if error is not None:
            _raise(error)

    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] += 1
        if self.init_error is not None:
            _raise(self.init_error)
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.calls["nvmlShutdown"] += 1
        self.initialised = False

    def nvmlSystemGetDriverVersion(self) -> str:
        self._call("nvmlSystemGetDriverVersion")
        return self.driver

    def nvmlDeviceGetCount(self) -> int:
        self._call("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        gpu = self.gpus[index]
        self._call("nvmlDeviceGetHandleByIndex", gpu)
        return gpu

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeGpu:
        for gpu in self.gpus:
            if gpu.uuid == uuid:
                self._call("nvmlDeviceGetHandleByUUID", gpu)
                return gpu
        raise real.NVMLError(real.NVML_ERROR_NOT_FOUND)

    # --- per device -----------------------------------------------------------------------------

    def nvmlDeviceGetName(self, h: FakeGpu) -> str:
        self._call("nvmlDeviceGetName", h)
        return h.name

    def nvmlDeviceGetUUID(self, h: FakeGpu) -> str:
        self._call("nvmlDeviceGetUUID", h)
        return h.uuid

    def nvmlDeviceGetIndex(self, h: FakeGpu) -> int:
        self._call("nvmlDeviceGetIndex", h)
        return h.index

    def nvmlDeviceGetPowerUsage(self, h: FakeGpu) -> int:
        self._call("nvmlDeviceGetPowerUsage", h)
        self._tick_clock()
        return h.power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, h: FakeGpu) -> int:
        self._call("nvmlDeviceGetTotalEnergyConsumption", h)
        self._tick_clock()
        return h.energy_mj

    def nvmlDeviceGetUtilizationRates(self, h: FakeGpu) -> Any:
        self._call("nvmlDeviceGetUtilizationRates", h)
        return real.c_nvmlUtilization_t(gpu=h.util[0], memory=h.util[1])

    def nvmlDeviceGetMemoryInfo(self, h: FakeGpu, version: Any = None) -> Any:
        if not version:  # v1: reserved memory counted as used
            self._call("nvmlDeviceGetMemoryInfo", h)
            used = h.mem_used + h.mem_reserved
            return real.c_nvmlMemory_t(total=h.mem_total, free=h.mem_total - used, used=used)
        self._call("nvmlDeviceGetMemoryInfo_v2", h)
        return real.c_nvmlMemory_v2_t(version=version, total=h.mem_total,
                                      reserved=h.mem_reserved,
                                      free=h.mem_total - h.mem_used - h.mem_reserved,
                                      used=h.mem_used)

    def nvmlDeviceGetTemperature(self, h: FakeGpu, sensor: int) -> int:
        self._call("nvmlDeviceGetTemperature", h)
        assert sensor == real.NVML_TEMPERATURE_GPU
        return h.temp_c

    def nvmlDeviceGetClockInfo(self, h: FakeGpu, clock_type: int) -> int:
        self._call("nvmlDeviceGetClockInfo", h)
        return {real.NVML_CLOCK_SM: h.sm_mhz, real.NVML_CLOCK_MEM: h.mem_mhz}[clock_type]

    def nvmlDeviceGetEnforcedPowerLimit(self, h: FakeGpu) -> int:
        self._call("nvmlDeviceGetEnforcedPowerLimit", h)
        return h.limit_mw

    def _procs(self, fn: str, h: FakeGpu, procs: list[tuple[int, int | None]]) -> list[Any]:
        self._call(fn, h)
        return [_proc(pid, used) for pid, used in procs]

    def nvmlDeviceGetComputeRunningProcesses(self, h: FakeGpu) -> list[Any]:
        self._call("nvmlDeviceGetComputeRunningProcesses", h)
        if "nvmlDeviceGetComputeRunningProcesses_v3" in self.missing:
            raise real.NVMLLibraryMismatchError("use nvmlDeviceGetComputeRunningProcesses_v2")
        return [_proc(pid, used) for pid, used in h.procs]

    def nvmlDeviceGetComputeRunningProcesses_v3(self, h: FakeGpu) -> list[Any]:
        return self._procs("nvmlDeviceGetComputeRunningProcesses_v3", h, h.procs)

    def nvmlDeviceGetComputeRunningProcesses_v2(self, h: FakeGpu) -> list[Any]:
        return self._procs("nvmlDeviceGetComputeRunningProcesses_v2", h, h.procs)

    def nvmlDeviceGetGraphicsRunningProcesses(self, h: FakeGpu) -> list[Any]:
        self._call("nvmlDeviceGetGraphicsRunningProcesses", h)
        if "nvmlDeviceGetGraphicsRunningProcesses_v3" in self.missing:
            raise real.NVMLLibraryMismatchError("use nvmlDeviceGetGraphicsRunningProcesses_v2")
        return [_proc(pid, used) for pid, used in h.graphics]

    def nvmlDeviceGetGraphicsRunningProcesses_v3(self, h: FakeGpu) -> list[Any]:
        return self._procs("nvmlDeviceGetGraphicsRunningProcesses_v3", h, h.graphics)

    def nvmlDeviceGetGraphicsRunningProcesses_v2(self, h: FakeGpu) -> list[Any]:
        return self._procs("nvmlDeviceGetGraphicsRunningProcesses_v2", h, h.graphics)

def two_gpus(**kw: Any) -> FakeNvml:
    """The normal script: two H100s, one busy with two processes, one idle."""
    busy = FakeGpu(0, power_w=450.0, util=(97, 60), mem_used=60 * GiB,
                   procs=[(4242, 40 * GiB), (4243, 18 * GiB)])
    idle = FakeGpu(1, power_w=70.0, util=(0, 0), mem_used=1 * GiB)
    return FakeNvml([busy, idle], **kw)
