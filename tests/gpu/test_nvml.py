"""The NVML sampler against the scripted fake (real pynvml exception classes and structs), and
once against the real pynvml of this machine, whatever it has."""

from __future__ import annotations

import threading
import time

import pynvml
import pytest

from console.gpu import nvml as nv
from console.gpu.nvml import FIELDS, NvmlSampler, Tick
from tests.gpu.fake_nvml import FakeGpu, FakeNvml, GiB, two_gpus


def test_fake_uses_the_real_shapes() -> None:
    fake = two_gpus()
    h = fake.nvmlDeviceGetHandleByIndex(0)
    util = fake.nvmlDeviceGetUtilizationRates(h)
    mem = fake.nvmlDeviceGetMemoryInfo(h)
    assert isinstance(util, pynvml.c_nvmlUtilization_t) and (util.gpu, util.memory) == (97, 60)
    assert isinstance(mem, pynvml.c_nvmlMemory_t) and mem.used == 60 * GiB
    proc = fake.nvmlDeviceGetComputeRunningProcesses(h)[0]
    assert isinstance(proc, pynvml.nvmlFriendlyObject)
    assert {"pid", "usedGpuMemory", "gpuInstanceId", "computeInstanceId"} <= set(vars(proc))
    assert fake.NVMLError_NotSupported is pynvml.NVMLError_NotSupported
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        h.lost = True
        fake.nvmlDeviceGetPowerUsage(h)


def test_normal_two_gpu_script() -> None:
    runs = {4242: "run-a", 4243: "run-b"}
    sampler = NvmlSampler(nvml=two_gpus(), pid_to_run=runs.get)
    tick = sampler.sample_once(now=100.0)
    assert tick is not None and tick.available and tick.ts == 100.0
    assert sampler.status == "2 NVIDIA GPUs, driver 550.54.15"
    g0, g1 = tick.gpus
    assert (g0.index, g0.name, g0.uuid) == (0, "NVIDIA H100 80GB HBM3", "GPU-00000000-fake-4000-8000-000000000000")
    assert g0.missing == {} and g1.missing == {}
    assert (g0.power_mw, g0.energy_mj, g0.util_gpu, g0.util_mem) == (450_000, 5_000_000, 97, 60)
    assert (g0.mem_used, g0.mem_total, g0.temp_c) == (60 * GiB, 80 * GiB, 45)
    assert (g0.sm_clock_mhz, g0.mem_clock_mhz, g0.power_limit_mw) == (1980, 2619, 700_000)
    assert [(p.pid, p.used_bytes, p.run_id) for p in g0.procs] == [
        (4242, 40 * GiB, "run-a"), (4243, 18 * GiB, "run-b")]
    assert g0.run_memory() == {"run-a": 40 * GiB, "run-b": 18 * GiB}
    assert g0.fresh and not sampler.sample_once(now=101.0).gpus[0].fresh  # type: ignore[union-attr]
    assert g1.procs == [] and g1.procs_missing is None


def test_not_supported_fields_are_reasons_and_not_asked_again() -> None:
    fake = two_gpus()
    gpu = fake.gpus[1]  # e.g. a consumer board: no energy counter, no clocks, no limit
    for fn in ("nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetClockInfo",
               "nvmlDeviceGetEnforcedPowerLimit"):
        gpu.errors[fn] = pynvml.NVMLError_NotSupported
    gpu.errors["nvmlDeviceGetTemperature"] = pynvml.NVMLError_NoPermission
    sampler = NvmlSampler(nvml=fake)
    s = sampler.sample_once(now=0.0).gpus[1]  # type: ignore[union-attr]
    assert s.energy_mj is None and s.missing["energy_mj"] == "NotSupported"
    assert s.missing["sm_clock_mhz"] == s.missing["mem_clock_mhz"] == "NotSupported"
    assert s.missing["power_limit_mw"] == "NotSupported"
    assert s.missing["temp_c"] == "NoPermission"
    assert s.power_mw == 70_000 and s.util_gpu == 0  # the rest still read
    before = fake.calls.copy()
    sampler.sample_once(now=20.0)
    assert fake.calls["nvmlDeviceGetTotalEnergyConsumption"] - before[
        "nvmlDeviceGetTotalEnergyConsumption"] == 1  # GPU 0 only: GPU 1's NotSupported is kept
    assert fake.calls["nvmlDeviceGetTemperature"] - before["nvmlDeviceGetTemperature"] == 2


def test_unexpected_errors_never_crash() -> None:
    fake = two_gpus()
    fake.gpus[0].errors["nvmlDeviceGetPowerUsage"] = RuntimeError("driver hiccup")
    fake.gpus[0].errors["nvmlDeviceGetUtilizationRates"] = pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)
    for fn in ("nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetMemoryInfo"):
        fake.gpus[0].errors[fn] = pynvml.NVMLLibraryMismatchError("old driver")
    s = NvmlSampler(nvml=fake).sample_once(now=0.0).gpus[0]  # type: ignore[union-attr]
    assert s.missing["power_mw"] == "RuntimeError: driver hiccup"
    assert s.missing["util_gpu"] == s.missing["util_mem"] == "Unknown"
    assert s.missing["mem_used"].startswith("FunctionNotFound")


def test_gpu_lost_mid_run_others_keep_going(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = two_gpus()
    sampler = NvmlSampler(nvml=fake)
    assert not any(g.lost for g in sampler.sample_once(now=0.0).gpus)  # type: ignore[union-attr]
    fake.gpus[1].errors["nvmlDeviceGetTotalEnergyConsumption"] = [pynvml.NVMLError_GpuIsLost]
    tick = sampler.sample_once(now=1.0)
    assert tick is not None
    good, lost = tick.gpus
    assert lost.lost and set(lost.missing) == set(FIELDS)
    assert set(lost.missing.values()) == {"GpuIsLost"} and lost.uuid == fake.gpus[1].uuid
    assert not good.lost and good.power_mw == 450_000
    assert sampler.status == "2 NVIDIA GPUs, driver 550.54.15, 1 lost"
    calls = fake.calls["nvmlDeviceGetPowerUsage"]
    assert sampler.sample_once(now=2.0).gpus[1].lost  # type: ignore[union-attr]
    assert fake.calls["nvmlDeviceGetPowerUsage"] == calls + 1  # the lost GPU is not asked
    # After LOST_RETRY_S it is looked for again (by UUID); it answers, as fresh.
    back = sampler.sample_once(now=2.0 + nv.LOST_RETRY_S).gpus[1]  # type: ignore[union-attr]
    assert not back.lost and back.fresh and back.power_mw == 70_000
    assert sampler.status == "2 NVIDIA GPUs, driver 550.54.15"


def test_gpu_lost_at_handle_time() -> None:
    fake = two_gpus()
    fake.gpus[0].errors["nvmlDeviceGetHandleByIndex"] = pynvml.NVMLError_GpuIsLost
    tick = NvmlSampler(nvml=fake).sample_once(now=0.0)
    assert tick is not None and tick.gpus[0].lost and not tick.gpus[1].lost


@pytest.mark.parametrize("error, words", [
    (pynvml.NVMLError_LibraryNotFound, "libnvidia-ml.so.1"),
    (pynvml.NVMLError_DriverNotLoaded, "driver is not loaded"),
    (pynvml.NVMLError_NoPermission, "no permission"),
    (pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN), "NVML could not start (Unknown)"),
])
def test_no_library_or_driver_is_one_status_line(error: object, words: str) -> None:
    fake = FakeNvml([FakeGpu(0)], init_error=error)
    sampler = NvmlSampler(nvml=fake)
    assert sampler.sample_once(now=0.0) is None
    assert sampler.status.startswith("no NVIDIA GPU: ") and words in sampler.status
    assert "\n" not in sampler.status and not sampler.available
    # It idles: NVML is tried again only after IDLE_RETRY_S.
    sampler.sample_once(now=1.0)
    assert fake.calls["nvmlInit"] == 1
    fake.init_error = None
    assert sampler.sample_once(now=nv.IDLE_RETRY_S + 1) is not None and sampler.available


def test_no_devices() -> None:
    sampler = NvmlSampler(nvml=FakeNvml([]))
    assert sampler.sample_once(now=0.0) is None
    assert sampler.status == "no NVIDIA GPU: the driver is loaded but reports no devices"


def test_real_pynvml_on_this_machine() -> None:
    """No fake: whatever this machine has. Here (no driver) that is the one status line."""
    sampler = NvmlSampler()
    tick = sampler.sample_once()
    if tick is None:
        assert sampler.status.startswith("no NVIDIA GPU: ")
    else:
        assert tick.gpus and "NVIDIA GPU" in sampler.status
    sampler.stop()


def test_mig_no_per_process_memory() -> None:
    fake = FakeNvml([FakeGpu(0, procs=[(10, None), (11, None)])])
    s = NvmlSampler(nvml=fake, pid_to_run={10: "r"}.get).sample_once(now=0.0).gpus[0]  # type: ignore[union-attr]
    assert [(p.pid, p.used_bytes, p.run_id) for p in s.procs] == [(10, None, "r"), (11, None, None)]
    assert s.procs_missing == "per-process memory not reported (MIG or WDDM)"
    assert s.run_memory() == {}


def test_process_lists_not_supported() -> None:
    gpu = FakeGpu(0)
    gpu.errors["nvmlDeviceGetComputeRunningProcesses"] = pynvml.NVMLError_NotSupported
    gpu.errors["nvmlDeviceGetGraphicsRunningProcesses"] = pynvml.NVMLError_NotSupported
    s = NvmlSampler(nvml=FakeNvml([gpu])).sample_once(now=0.0).gpus[0]  # type: ignore[union-attr]
    assert s.procs == [] and s.procs_missing == "compute: NotSupported; graphics: NotSupported"


def test_compute_and_graphics_merge_by_pid() -> None:
    gpu = FakeGpu(0, procs=[(7, 2 * GiB)], graphics=[(7, 3 * GiB), (8, 1 * GiB)])
    s = NvmlSampler(nvml=FakeNvml([gpu])).sample_once(now=0.0).gpus[0]  # type: ignore[union-attr]
    assert [(p.pid, p.used_bytes, p.kind) for p in s.procs] == [
        (7, 3 * GiB, "compute+graphics"), (8, 1 * GiB, "graphics")]


def test_pid_to_run_errors_do_not_break_sampling() -> None:
    def boom(pid: int) -> str | None:
        raise ProcessLookupError(pid)

    s = NvmlSampler(nvml=two_gpus(), pid_to_run=boom).sample_once(now=0.0).gpus[0]  # type: ignore[union-attr]
    assert [p.run_id for p in s.procs] == [None, None]


def test_counter_reset_is_passed_through() -> None:
    fake = two_gpus()
    sampler = NvmlSampler(nvml=fake)
    first = sampler.sample_once(now=0.0).gpus[0].energy_mj  # type: ignore[union-attr]
    fake.gpus[0].energy_mj = 1_000  # driver reloaded: the counter starts again
    second = sampler.sample_once(now=1.0).gpus[0].energy_mj  # type: ignore[union-attr]
    assert first == 5_000_000 and second == 1_000  # the ledger decides what that means


def test_rate_is_clamped() -> None:
    assert NvmlSampler(0.01, nvml=two_gpus()).hz == nv.MIN_HZ
    assert NvmlSampler(50, nvml=two_gpus()).hz == nv.MAX_HZ


def test_thread_ticks_and_survives_a_bad_consumer() -> None:
    ticks: list[Tick] = []
    got = threading.Event()

    def consume(tick: Tick) -> None:
        ticks.append(tick)
        if len(ticks) == 2:
            raise ValueError("consumer bug")
        if len(ticks) >= 5:
            got.set()

    fake = two_gpus(clock=time.monotonic)
    sampler = NvmlSampler(10, nvml=fake, on_tick=consume).start()
    try:
        assert got.wait(5), "the sampler stopped ticking"
    finally:
        sampler.stop()
    assert not fake.initialised  # nvmlShutdown on stop
    assert all(len(t.gpus) == 2 for t in ticks)
    assert ticks[-1].gpus[0].energy_mj > ticks[0].gpus[0].energy_mj  # the counter moved
