"""The workload benchmark: recorded gate traffic exported as traces and replayed against a
local OpenAI-compatible server at several concurrencies, with InferenceX's figures per step.

- export: trace_requests rows as mooncake (aiperf) or pilothouse JSONL.
- workload: a trace file as lanes, and synthetic prompts with the recorded prefix sharing.
- client: the replay's HTTP client (timings as bytes arrive).
- sweep: steps at each concurrency, energy from the NVML counter over exactly the step.
- figures: tok/s per GPU and per user, TTFT/TPOT/ITL/E2E percentiles, J/token, tok/s/MW, $/Mtok.
- results: the steps kept in replay.db.
"""
