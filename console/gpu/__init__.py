"""GPU power and inference throughput: NVML sampling, Prometheus scrapes of local model
servers, energy joined with tokens, and the daemon service that ties them to runs.

- nvml.NvmlSampler: per-GPU readings at 0.2-10 Hz in a thread; never raises on NVML errors.
- scrape.Scraper: token counters of vLLM, SGLang, llama.cpp and TGI as deltas.
- energy.EnergyLedger: windows, in-flight requests, per-run attribution that sums to the total;
  maths: the stateless arithmetic (counter deltas, exact splits, derived figures).
- views: readings and figures in display units, "n/a: reason" where missing.
- service.GpuService: what the daemon starts; the `gpu` and `report` ops read from it.
"""

from console.gpu.service import GpuService

__all__ = ["GpuService"]
